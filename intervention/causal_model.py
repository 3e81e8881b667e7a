"""Candidate high-level causal models as NetworkX DiGraphs.

Nodes are named variables: inputs (no parents, a finite domain), intermediates, and one output.
Every non-input node carries a mechanism over its parents: an expression (parsed by
``intervention.expressions``, parents = the names it reads) or a Python callable taking the
parents as keyword arrays. Models validate on construction and run vectorised over arrays of
inputs, so counterfactual labels for a million (base, source) pairs cost milliseconds.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence

import networkx as nx
import numpy as np

from intervention.expressions import Expression, ExpressionError, kind_of

Mechanism = str | Expression | Callable[..., np.ndarray]
# The most inputs a task enumerates: every stage holds arrays over them (and over pairs of
# them), so a larger space is refused before its product is built, not met as a MemoryError.
MAX_INPUTS = 1_000_000
MAX_CHECKED_INPUTS = MAX_INPUTS  # input spaces up to this size are run through on construction


class CausalModelError(ValueError):
    """A malformed causal model; the message says exactly what is wrong."""


def count_inputs(domains: Mapping[str, Sequence]) -> int:
    """The number of inputs (the product of the domain sizes), in exact integer arithmetic."""
    return math.prod(len(d) for d in domains.values())


def require_enumerable(domains: Mapping[str, Sequence], what: str) -> int:
    """The number of inputs, refusing a space larger than MAX_INPUTS before anything is built."""
    n = count_inputs(domains)
    if n > MAX_INPUTS:
        sizes = " x ".join(f"{len(d)} ({v})" for v, d in domains.items())
        raise CausalModelError(
            f"{what}: the input space has {sizes} = {n:,} inputs, more than the limit of "
            f"{MAX_INPUTS:,} that are enumerated; use fewer input variables or smaller domains"
        )
    return n


class CausalModel:
    """One candidate algorithm.

    Parameters
    ----------
    name : the candidate's name, e.g. "(X+Y)+Z".
    inputs : input variable -> its finite domain (the values it takes).
    mechanisms : non-input variable -> expression text or callable.
    output : the output variable; inferred when the graph has exactly one sink.
    domains : optional declared domains of non-input variables; computed values must lie in them.
    parents : the parents of callable mechanisms (expressions declare theirs by the names read);
        given for an expression, they must include every name it reads.
    """

    def __init__(
        self,
        name: str,
        inputs: Mapping[str, Sequence],
        mechanisms: Mapping[str, Mechanism],
        output: str | None = None,
        *,
        domains: Mapping[str, Sequence] | None = None,
        parents: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        if not name or not str(name).strip():
            raise CausalModelError("a causal model needs a non-empty name")
        self.name = str(name)
        self.graph = nx.DiGraph(name=self.name)
        kinds: dict[str, str | None] = {}
        for var, domain in inputs.items():
            values = tuple(domain)
            if not values:
                raise CausalModelError(f"{self.name}: input {var!r} has an empty domain")
            kinds[var] = self._domain_kind(var, values)
            self.graph.add_node(var, kind="input", domain=values, mechanism=None)
        overlap = sorted(set(inputs) & set(mechanisms))
        if overlap:
            raise CausalModelError(
                f"{self.name}: {overlap} are inputs and cannot also have mechanisms"
            )
        domains = dict(domains or {})
        parents = dict(parents or {})
        for var, mech in mechanisms.items():
            fn, reads = self._mechanism(var, mech, parents.get(var))
            domain = tuple(domains[var]) if var in domains else None
            self.graph.add_node(var, kind="intermediate", domain=domain, mechanism=fn)
            for parent in reads:
                self.graph.add_edge(parent, var)
        unknown = sorted(n for n in self.graph if "kind" not in self.graph.nodes[n])
        if unknown:
            readers = {u: sorted(self.graph.successors(u)) for u in unknown}
            raise CausalModelError(
                f"{self.name}: mechanisms read unknown variables {readers}; declare them as "
                "inputs or give them mechanisms"
            )
        extra = sorted(set(domains) - set(mechanisms))
        if extra:
            raise CausalModelError(
                f"{self.name}: domains given for {extra}, which have no mechanism"
            )
        self._check_acyclic()
        self.output = self._check_output(output)
        self.graph.nodes[self.output]["kind"] = "output"
        self.order = [v for v in nx.topological_sort(self.graph) if v not in inputs]
        self.inputs = tuple(inputs)
        self._check_kinds(kinds, domains)
        self._check_domains()

    # -- construction checks ----------------------------------------------------------------

    def _mechanism(self, var: str, mech: Mechanism, declared: Sequence[str] | None):
        if isinstance(mech, str):
            mech = Expression.parse(mech)
        if isinstance(mech, Expression):
            reads = sorted(mech.names)
            if declared is not None and not set(reads) <= set(declared):
                raise CausalModelError(
                    f"{self.name}: the mechanism of {var!r} ({mech.text!r}) reads "
                    f"{sorted(set(reads) - set(declared))}, which are not among its parents "
                    f"{list(declared)}"
                )
            reads = list(declared) if declared is not None else reads
            return mech, reads
        if callable(mech):
            if declared is None:
                raise CausalModelError(
                    f"{self.name}: the callable mechanism of {var!r} needs its parents declared "
                    "(parents={...})"
                )
            return mech, list(declared)
        raise CausalModelError(
            f"{self.name}: the mechanism of {var!r} must be an expression or a callable, "
            f"got {type(mech).__name__}"
        )

    def _check_acyclic(self) -> None:
        try:
            cycle = nx.find_cycle(self.graph)
        except nx.NetworkXNoCycle:
            return
        path = " -> ".join([u for u, _ in cycle] + [cycle[0][0]])
        raise CausalModelError(
            f"{self.name}: the graph has a cycle {path}; a causal model is acyclic"
        )

    def _check_output(self, output: str | None) -> str:
        sinks = sorted(
            v
            for v in self.graph
            if self.graph.out_degree(v) == 0 and self.graph.nodes[v]["kind"] != "input"
        )
        if output is None:
            if len(sinks) != 1:
                raise CausalModelError(
                    f"{self.name}: cannot tell the output: "
                    + (
                        "no variable is computed from others"
                        if not sinks
                        else f"several sinks {sinks}"
                    )
                    + "; name it with output=..."
                )
            return sinks[0]
        if output not in self.graph:
            raise CausalModelError(f"{self.name}: output {output!r} is not a variable of the model")
        if self.graph.nodes[output]["kind"] == "input":
            raise CausalModelError(
                f"{self.name}: output {output!r} is an input; it needs a mechanism"
            )
        others = [s for s in sinks if s != output]
        if others or self.graph.out_degree(output):
            raise CausalModelError(
                f"{self.name}: a model has one output, but {sorted(set(sinks) | {output})} "
                "end the graph (or the output feeds another variable); connect or remove them"
            )
        return output

    def _domain_kind(self, var: str, values: tuple) -> str:
        # numpy would turn a mix such as [1, "a"] into strings without a word: refuse it here.
        try:
            kind = kind_of(values)
        except ExpressionError as exc:
            raise CausalModelError(f"{self.name}: the domain of {var!r}: {exc}") from None
        if len(set(values)) != len(values):
            repeated = sorted({repr(v) for v in values if values.count(v) > 1})
            raise CausalModelError(
                f"{self.name}: the domain of {var!r} repeats {', '.join(repeated)}; list each "
                "value once"
            )
        return kind

    def _check_kinds(self, kinds: dict[str, str | None], domains: Mapping[str, Sequence]) -> None:
        """Every expression is applied only to kinds it supports (no arithmetic on strings, no
        string compared with a number), whatever inputs it later runs on."""
        for var in self.order:
            mech = self.graph.nodes[var]["mechanism"]
            if isinstance(mech, Expression):
                try:
                    kinds[var] = mech.kind(kinds)
                except ExpressionError as exc:
                    raise CausalModelError(
                        f"{self.name}: the mechanism of {var!r}: {exc}"
                    ) from None
            elif var in domains:  # a callable with a declared domain: its kind is the domain's
                kinds[var] = self._domain_kind(var, tuple(domains[var]))
            else:
                kinds[var] = None

    def _check_domains(self) -> None:
        if count_inputs(self._domains()) <= MAX_CHECKED_INPUTS:
            self.run(self.input_space())

    def _domains(self) -> dict[str, tuple]:
        return {v: self.graph.nodes[v]["domain"] for v in self.inputs}

    # -- running ----------------------------------------------------------------------------

    def input_space(self) -> dict[str, np.ndarray]:
        """Every combination of input values, the last input varying fastest; a space of more
        than MAX_INPUTS is refused before it is built."""
        domains = self._domains()
        require_enumerable(domains, self.name)
        rows = np.array(list(itertools.product(*domains.values())), dtype=object)
        return {v: np.array(rows[:, k].tolist()) for k, v in enumerate(self.inputs)}

    def parents(self, var: str) -> list[str]:
        return sorted(self.graph.predecessors(var))

    def run(
        self, inputs: Mapping[str, np.ndarray], fixed: Mapping[str, np.ndarray] | None = None
    ) -> dict[str, np.ndarray]:
        """Every variable's values over arrays of inputs; ``fixed`` overrides mechanisms
        (an intervention) with given values."""
        missing = [v for v in self.inputs if v not in inputs]
        if missing:
            raise CausalModelError(f"{self.name}: inputs {missing} were not given")
        values = {v: np.asarray(inputs[v]) for v in self.inputs}
        for v, x in (fixed or {}).items():
            if v not in self.graph:
                raise CausalModelError(f"{self.name}: cannot intervene on unknown variable {v!r}")
            values[v] = np.asarray(x)
        for var in self.order:
            if fixed and var in fixed:
                continue
            mech = self.graph.nodes[var]["mechanism"]
            env = {p: values[p] for p in self.graph.predecessors(var)}
            try:
                raw = mech(env) if isinstance(mech, Expression) else mech(**env)
            except ExpressionError as exc:  # division by zero, overflow: say where
                raise CausalModelError(f"{self.name}: computing {var!r}: {exc}") from None
            out = np.broadcast_to(
                np.asarray(raw),
                np.broadcast_shapes(*(np.shape(x) for x in env.values())) if env else (),
            )
            domain = self.graph.nodes[var]["domain"]
            if domain is not None:
                outside = ~np.isin(out, np.array(domain))
                if outside.any():
                    raise CausalModelError(
                        f"{self.name}: {var!r} took value {out[outside].flat[0].item()!r}, "
                        f"outside its domain {list(domain)}"
                    )
            values[var] = out
        return values

    def interchange(
        self,
        base: Mapping[str, np.ndarray],
        source: Mapping[str, np.ndarray],
        targets: Sequence[str],
    ) -> np.ndarray:
        """The counterfactual output: run on ``base`` with ``targets`` set to their values on
        ``source`` (element-wise over the arrays)."""
        source_values = self.run(source)
        return self.run(base, fixed={t: source_values[t] for t in targets})[self.output]

    def __repr__(self) -> str:
        mechs = {
            v: getattr(self.graph.nodes[v]["mechanism"], "text", "<callable>") for v in self.order
        }
        return f"CausalModel({self.name!r}, inputs={list(self.inputs)}, mechanisms={mechs})"
