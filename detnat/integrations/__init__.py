"""The annotator where the data lives: Spark, Dask, DuckDB and Polars entry points.

Each module imports its engine inside its functions, so ``import detnat.integrations.spark``
works (and doctests collect) where PySpark is not installed; install the extra
(``pip install detnat[spark]``, ``[dask]``, ``[duckdb]``, ``[polars]``) to use one.

Every entry point answers from a snapshot file (``detnat snapshot export``): the driver checks
it once, the workers get its bytes (Spark: ``SparkContext.addFile``; Dask: in the task graph,
once per worker process) and check them again against the driver's SHA-256 before answering, so
a snapshot changed on the way is refused there too. Each gives a job summary
(:class:`detnat.snapshot.jobs.JobSummary`) for ``detnat audit record-job``. See
``docs/scale-out.md``.
"""
