"""Hypothesis strategies for small, valid engine plans of both algorithms.

Every plan drawn here compiles: the strategies build the key space and the pool first and then
size the ports and blocks so that capacity covers every subscriber. They aim at the corners the
engine must get right rather than at realistic sizes:

- ``block``: IPv4 keys (/32 and shorter, e.g. /30) and IPv6 keys (/56, /64, /128); one to three
  inside and outside prefixes in non-sorted list order; inside excludes (single subscribers and
  aligned pairs); outside excludes (addresses and /31s, sometimes a whole outside prefix); port
  ranges touching 0 and 65535; excluded ports and port ranges; ``size`` and ``ratio``; tails;
  dynamic blocks; spare blocks no subscriber owns; sequential and staggered; static bindings.
- ``map``: psid_offset 0..16, PSID length 0..16-a (so a = 0, k = 0 and a + k = 16 all occur),
  IPv4 rule prefixes /30../32, subscriber prefixes /56, /64, /128 and others; static bindings.

Pool addresses live in 192.0.2.0/24 and 198.51.100.0/24, static addresses in 203.0.113.0/24, so
tests know which addresses are certainly outside every pool.
"""

from __future__ import annotations

from hypothesis import strategies as st

from detnat.engine import (
    Block,
    Inside,
    MapRule,
    Outside,
    Plan,
    Ports,
    Prefix,
    StaticBinding,
    parse_address,
)

V4, V6 = 4, 6
WIDTH = {V4: 32, V6: 128}

POOL_BASES = (parse_address("192.0.2.0")[1], parse_address("198.51.100.0")[1])
STATIC_BASE = parse_address("203.0.113.0")[1]
INSIDE_BASES = {
    V4: tuple(parse_address(a)[1] for a in ("10.0.0.0", "100.64.0.0", "198.18.0.0")),
    V6: tuple(parse_address(a)[1] for a in ("2001:db8::", "2001:db8:8000::")),
}
SUBSCRIBER_LENGTHS = {V4: (32, 31, 30, 28), V6: (56, 64, 128)}
MAX_EXTRA_BITS = 4  # one inside prefix holds up to 2**4 subscribers


def _pairs_merged(keys: list[int], limit: dict[int, int]) -> list[tuple[int, int]]:
    """Excluded keys as (key, bits) prefixes, an aligned excluded pair merged into one when allowed.

    ``limit[key]`` is how many bits above one subscriber the key's inside prefix has, so a merged
    exclude never reaches outside its prefix.
    """
    chosen = set(keys)
    out: list[tuple[int, int]] = []
    for key in sorted(chosen):
        buddy = key ^ 1
        if buddy in chosen and limit[key] >= 1:
            if key & 1 == 0:
                out.append((key, 1))
        else:
            out.append((key, 0))
    return out


@st.composite
def inside_spaces(
    draw: st.DrawFn, family: int | None = None
) -> tuple[Inside, list[Prefix], list[Prefix]]:
    """(inside, the subscribers in numbering order, the excluded subscribers)."""
    if family is None:
        family = draw(st.sampled_from((V4, V6)))
    width = WIDTH[family]
    length = draw(st.sampled_from(SUBSCRIBER_LENGTHS[family]))
    host_bits = width - length
    slot_bits = host_bits + MAX_EXTRA_BITS
    base = draw(st.sampled_from(INSIDE_BASES[family]))
    slots = draw(st.lists(st.integers(0, 15), min_size=1, max_size=3, unique=True))
    prefixes: list[Prefix] = []
    limit: dict[int, int] = {}
    ordered_keys: list[int] = []
    for slot in slots:
        extra = draw(st.integers(0, min(MAX_EXTRA_BITS, length)))
        position = draw(st.integers(0, (1 << (MAX_EXTRA_BITS - extra)) - 1))
        network = base + (slot << slot_bits) + (position << (host_bits + extra))
        prefixes.append(Prefix(family, network, length - extra))
        first_key = network >> host_bits
        for key in range(first_key, first_key + (1 << extra)):
            ordered_keys.append(key)
            limit[key] = extra
    excluded_keys = draw(
        st.lists(
            st.sampled_from(ordered_keys),
            unique=True,
            max_size=min(4, len(ordered_keys) - 1),
        )
    )
    exclude = [
        Prefix(family, key << host_bits, length - bits)
        for key, bits in _pairs_merged(excluded_keys, limit)
    ]
    if exclude and draw(st.booleans()):
        # Overlapping exclusions mean the same as their union.
        again = draw(st.sampled_from(exclude))
        exclude.append(Prefix(family, again.network, length))
    exclude = draw(st.permutations(exclude))
    gone = set(excluded_keys)
    subscribers = [Prefix(family, k << host_bits, length) for k in ordered_keys if k not in gone]
    skipped = [Prefix(family, k << host_bits, length) for k in ordered_keys if k in gone]
    return Inside(tuple(prefixes), length, tuple(exclude)), subscribers, skipped


@st.composite
def outside_pools(draw: st.DrawFn) -> tuple[Outside, list[int], list[int]]:
    """(outside, usable addresses in numbering order, excluded addresses)."""
    slots = draw(st.lists(st.integers(0, 127), min_size=1, max_size=3, unique=True))
    prefixes: list[Prefix] = []
    addresses: list[int] = []
    limit: dict[int, int] = {}
    for slot in slots:
        network = POOL_BASES[slot // 64] + (slot % 64) * 4
        length = draw(st.sampled_from((30, 31, 32)))
        network += draw(st.integers(0, (1 << (length - 30)) - 1)) << (32 - length)
        prefixes.append(Prefix(V4, network, length))
        for address in range(network, network + (1 << (32 - length))):
            addresses.append(address)
            limit[address] = 32 - length
    excluded = draw(
        st.lists(st.sampled_from(addresses), unique=True, max_size=min(3, len(addresses) - 1))
    )
    exclude = [Prefix(V4, address, 32 - bits) for address, bits in _pairs_merged(excluded, limit)]
    if exclude and draw(st.booleans()):
        exclude.append(Prefix(V4, draw(st.sampled_from(exclude)).network, 32))
    exclude = draw(st.permutations(exclude))
    usable = [a for a in addresses if a not in set(excluded)]
    return Outside(tuple(prefixes), tuple(exclude)), usable, sorted(excluded)


@st.composite
def port_ranges(draw: st.DrawFn, usable: int) -> Ports:
    """Ports with exactly ``usable`` usable ports, some excluded ports and ranges among them."""
    lengths = draw(st.lists(st.one_of(st.integers(1, 3), st.integers(4, 40)), max_size=3))
    offsets = sorted(
        draw(st.lists(st.integers(0, usable), min_size=len(lengths), max_size=len(lengths)))
    )
    span = usable + sum(lengths)
    highest = 65536 - span
    first = draw(st.one_of(st.just(0), st.just(highest), st.integers(0, highest)))
    exclude: list[tuple[int, int]] = []
    port, previous = first, 0
    for offset, length in zip(offsets, lengths, strict=True):
        port += offset - previous
        exclude.append((port, port + length - 1))
        port += length
        previous = offset
    if exclude and draw(st.booleans()):
        low, high = draw(st.sampled_from(exclude))
        exclude.append((low, draw(st.integers(low, high))))  # overlaps one already there
    exclude = draw(st.permutations(exclude))
    return Ports(first, first + span - 1, tuple(exclude))


@st.composite
def static_bindings(draw: st.DrawFn, subscribers: list[Prefix]) -> tuple[StaticBinding, ...]:
    chosen = draw(st.lists(st.sampled_from(subscribers), unique=True, max_size=2))
    hosts = draw(
        st.lists(st.integers(0, 255), unique=True, min_size=len(chosen), max_size=len(chosen))
    )
    return tuple(
        StaticBinding(sub, STATIC_BASE + host) for sub, host in zip(chosen, hosts, strict=True)
    )


@st.composite
def block_plans(
    draw: st.DrawFn, *, max_usable_ports: int = 65536, family: int | None = None
) -> Plan:
    """A valid ``block`` plan; ``max_usable_ports`` below 64512 keeps brute force fast."""
    inside, subscribers, _ = draw(inside_spaces(family))
    outside, addresses, _ = draw(outside_pools())
    dynamic = draw(st.integers(0, 2))
    spare = draw(st.integers(0, 2))
    deterministic = -(-len(subscribers) // len(addresses)) + spare
    blocks = deterministic + dynamic
    assignment = draw(st.sampled_from(("sequential", "staggered")))
    use_ratio = draw(st.booleans())
    ports: Ports | None
    if max_usable_ports >= 64512 and draw(st.booleans()):
        ports = None  # the default 1024-65535
        if use_ratio:
            block = Block(ratio=blocks, assignment=assignment, dynamic_blocks=dynamic)
        else:
            size = draw(st.integers(1, 64512 // blocks))
            block = Block(size=size, assignment=assignment, dynamic_blocks=dynamic)
    else:
        size = draw(st.integers(1, max(1, min(400, (max_usable_ports - 600) // (blocks + 1)))))
        tail = draw(st.integers(0, min(size, blocks) - 1 if use_ratio else size - 1))
        ports = draw(port_ranges(blocks * size + tail))
        if use_ratio:
            block = Block(ratio=blocks, assignment=assignment, dynamic_blocks=dynamic)
        else:
            block = Block(size=size, assignment=assignment, dynamic_blocks=dynamic)
    static = draw(static_bindings(subscribers))
    return Plan("block", inside=inside, outside=outside, ports=ports, block=block, static=static)


@st.composite
def map_plans(draw: st.DrawFn, *, max_ea_bits: int = 18) -> Plan:
    """A valid ``map`` plan with at most 2**max_ea_bits subscribers."""
    psid_offset = draw(st.integers(0, 16))
    suffix_bits = draw(st.integers(0, min(2, max_ea_bits)))
    psid_length = draw(st.integers(0, min(16 - psid_offset, max_ea_bits - suffix_bits)))
    ea_bits = suffix_bits + psid_length
    target = draw(st.sampled_from((56, 64, 128, None)))
    rule_length = draw(st.integers(32, 128 - ea_bits)) if target is None else target - ea_bits
    rule_bits = draw(st.integers(0, (1 << (rule_length - 32)) - 1))
    rule6 = Prefix(V6, (0x20010DB8 << 96) | (rule_bits << (128 - rule_length)), rule_length)
    slot = draw(st.integers(0, 127))
    rule4 = Prefix(V4, POOL_BASES[slot // 64] + (slot % 64) * 4, 32 - suffix_bits)
    if psid_offset == 6 and draw(st.booleans()):
        rule = MapRule(rule6, rule4, ea_bits)  # the default offset
    else:
        rule = MapRule(rule6, rule4, ea_bits, psid_offset)
    subscriber_length = rule_length + ea_bits
    indices = draw(st.lists(st.integers(0, (1 << ea_bits) - 1), unique=True, max_size=2))
    subscribers = [
        Prefix(V6, rule6.network | (i << (128 - subscriber_length)), subscriber_length)
        for i in indices
    ]
    static = draw(static_bindings(subscribers)) if subscribers else ()
    return Plan("map", map=rule, static=static)


def plans(*, max_usable_ports: int = 65536, max_ea_bits: int = 18) -> st.SearchStrategy[Plan]:
    """Valid plans of either algorithm."""
    return st.one_of(
        block_plans(max_usable_ports=max_usable_ports), map_plans(max_ea_bits=max_ea_bits)
    )
