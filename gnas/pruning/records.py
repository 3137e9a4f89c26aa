"""The pruning records that cross seams: an attempt's options and a pruned network's chain.

Both are stored as JSON (an attempt's options in its task and its row's
``final_options``, a chain in the pruning step's state), so each has one
``to_dict`` that writes it and one ``from_dict`` that reads it back, where a
row or state written before a field existed gets that field's default.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Mapping, Sequence

from gnas.config import RunConfig
from gnas.genome.space import bits_to_str
from gnas.pruning.cuts import Cut, as_cut, attempt_tag, cuts_to_json, mask_steps

SETTINGS = ("cycles", "tune_lr_scale", "mask", "nm", "sparsity", "mask_score")
"""What shapes every attempt of a run: in its variant digest and in its final options
(with ``mask_step`` too when it is set: attempts stored before it existed keep their digest)."""

#: The share of a row, column or block mask's units one mask step zeroes (:data:`gnas.pruning.cuts.MASK`).
MASK_STEP = 0.1
STRUCTURED = ("row", "column", "block")


@dataclass(frozen=True)
class PruneOptions:
    """How one pruning attempt is replayed: base genome, cuts in order, fine-tuning and masks.

    ``tune_lr_scale`` is 1 and the mask ``"none"`` in attempts stored before
    they existed; ``variant`` is the attempt's digest (:func:`attempt_tag`),
    empty in a row's ``final_options``. ``mask_step`` > 0 (a row, column or
    block mask) grows the mask by mask steps up to ``sparsity``, each one
    accepted or not as a cut; 0 (irregular and N:M masks, and attempts stored
    before it existed) applies the mask at ``sparsity`` on the base at once.
    """

    cycles: int = 40
    tune_lr_scale: float = 1.0
    mask: str = "none"
    nm: str = "2:4"
    sparsity: float = 0.5
    mask_score: str = "magnitude"
    mask_step: float = 0.0
    base: str = ""
    cuts: tuple[Cut, ...] = ()
    variant: str = ""

    @classmethod
    def for_run(cls, cfg: RunConfig) -> "PruneOptions":
        """The settings of a run's attempts (no base or cuts yet)."""
        p = cfg.prune
        return cls(cycles=int(p.cycles), tune_lr_scale=float(p.tune_lr_scale), mask=p.mask, nm=p.nm,
                   sparsity=float(p.mask_sparsity or p.fraction), mask_score=p.mask_score,
                   mask_step=MASK_STEP if p.mask in STRUCTURED else 0.0)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PruneOptions":
        """Options read back from a task or a row; a missing key takes its default."""
        d = cls()
        return cls(cycles=int(data.get("cycles", d.cycles)),
                   tune_lr_scale=float(data.get("tune_lr_scale", d.tune_lr_scale)),
                   mask=data.get("mask") or d.mask, nm=data.get("nm") or d.nm,
                   sparsity=float(data.get("sparsity", d.sparsity)),
                   mask_score=data.get("mask_score") or d.mask_score,
                   mask_step=float(data.get("mask_step", d.mask_step)), base=data.get("base", ""),
                   cuts=tuple(as_cut(c) for c in data.get("cuts", [])), variant=data.get("variant", ""))

    def settings(self) -> dict[str, Any]:
        """The run-wide settings alone (:data:`SETTINGS`), e.g. for the step's state and cache keys."""
        out = {name: getattr(self, name) for name in SETTINGS}
        return {**out, "mask_step": self.mask_step} if self.mask_step > 0 else out

    @property
    def gradual(self) -> bool:
        """Whether the mask grows by mask steps (else it is applied at ``sparsity`` at once)."""
        return self.mask != "none" and self.mask_step > 0

    def mask_level(self, cuts: Sequence[Cut]) -> float:
        """The mask's sparsity after ``cuts``: ``mask_step`` times their mask steps, at most
        ``sparsity`` (without gradual masking: ``sparsity`` throughout)."""
        if not self.gradual:
            return self.sparsity
        return min(self.sparsity, round(self.mask_step * mask_steps(cuts), 9))

    def attempt(self, base: Sequence[int], cuts: Sequence[Cut]) -> "PruneOptions":
        """These settings for the attempt ``base`` + ``cuts``, with its variant digest."""
        return replace(self, base=bits_to_str(base), cuts=tuple(cuts),
                       variant=attempt_tag(base, cuts, self.settings()))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the settings, then base, cuts and (when set) the variant."""
        out = {**self.settings(), "base": self.base, "cuts": cuts_to_json(self.cuts)}
        if self.variant:
            out["variant"] = self.variant
        return out

    def final(self) -> dict[str, Any]:
        """What a row keeps to rebuild its network (``metrics["final_options"]``): no variant."""
        return replace(self, variant="").to_dict()


@dataclass(frozen=True)
class ChainRecord:
    """One pruned network as the pruning step keeps it: its chain's outcome and both ends' rows.

    The fields of :class:`gnas.pruning.cuts.ChainResult`, plus the generation it
    ran in, the genome it ended at and a summary of the rows before and after.
    """

    base: str
    cuts: tuple[Cut, ...] = ()
    fitness_before: float | None = None
    fitness_after: float | None = None
    pruned_fraction: float = 0.0
    gene_fraction: float = 0.0
    key_before: str = ""
    key_after: str = ""
    reason: str = ""
    attempts: tuple[dict[str, Any], ...] = ()
    generation: int = 0
    genome_after: str = ""
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ChainRecord":
        """A chain read back from the step's state; keys it lacks take their defaults."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["cuts"] = tuple(as_cut(c) for c in values.get("cuts", ()))
        values["attempts"] = tuple(values.get("attempts", ()))
        values.setdefault("genome_after", values.get("base", ""))
        return cls(**values)

    @property
    def pruned(self) -> bool:
        """Whether the chain ended at another network than its base, with a fitness."""
        return self.fitness_after is not None and bool(self.cuts)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form kept in the step's state (cuts and attempts as lists)."""
        out = asdict(self)
        out["cuts"] = list(self.cuts)
        out["attempts"] = list(self.attempts)
        return out
