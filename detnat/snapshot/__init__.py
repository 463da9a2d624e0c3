"""Snapshots: plan versions of some realms over a period as one hashed file, and the annotator
that answers Arrow batches of flow records from one without a database.

- :mod:`.file`: the file format (``detnat-snapshot/1``): :func:`~.file.load` checks every byte;
- :mod:`.annotate`: :class:`~.annotate.Annotator`, vectorised reverse lookups at each row's time;
- :mod:`.files`: Parquet and CSV files annotated on one machine, streamed (``detnat annotate``);
- :mod:`.jobs`: job summaries (row counts, hashes of input and output) for the audit log.

Pure (numpy, pyarrow, the engine): workers of Spark, Dask, DuckDB or Polars jobs import it.
``pyarrow`` is imported by :mod:`.annotate`, :mod:`.files` and :mod:`.jobs` only.
"""
