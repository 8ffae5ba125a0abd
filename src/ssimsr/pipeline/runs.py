"""One training run's identity: its seven keys, its folder, and their parsing.

Every stage names a run the same way: the rules (wildcards and output paths), training
(written into params.json), collection (read back from there), statistics (the run keys
minus those a comparison varies), tables and figures. A run's folder below
``results/train`` (and ``results/eval``) is :data:`Run.PATTERN`, e.g.
``table1/corrected/sr/bsds300/ls1/b4c4-b5c4/seed0``.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path


#: The loss weight that each study's grid sets (``studies.<name>.lambda_s``): a run's
#: ``lambda_s`` key and folder tag (``ls1``), and one of its ``loss_weights`` like any other.
#: ``losses`` and a preset set every other registered term's weight, never this one.
GRID_WEIGHT = "lambda_s"

#: Significant digits of a loss weight's key (:func:`weight_key`).
WEIGHT_DIGITS = 12


def weight_key(value):
    """The canonical value of a loss weight (λ_s and the others): its float to
    :data:`WEIGHT_DIGITS` significant digits, so that a weight read back from a folder tag,
    a CSV cell (text or a float whose last digit the parser chose) or the config is the same
    key. Two weights are the same exactly where their keys are equal (:func:`same_weight`);
    a key is also a groupby, pivot or merge key. A pandas column (or index) gives a column
    of keys (each distinct value keyed once); NaN stays NaN."""
    if hasattr(value, "map"):  # a pandas column
        column = value.astype(float)
        return column.map({v: weight_key(v) for v in column.unique()})
    return float(f"{float(value):.{WEIGHT_DIGITS}g}")


def same_weight(a, b):
    """Whether loss weights ``a`` and ``b`` are the same (equal :func:`weight_key`): a bool,
    or elementwise (a boolean column) where one of them is a pandas column."""
    return weight_key(a) == weight_key(b)


def lambda_tag(value: float) -> str:
    """The one spelling of a λ_s in paths: 0 -> '0', 1.0 -> '1', 0.5 -> '0.5', 1e-05 -> '1e-05',
    0.1234567 -> '0.1234567'. Short (``%g``) where that reads back as the same float, else
    Python's shortest round-trip ``repr``: two different values never share a folder, and
    :data:`Run.WILDCARDS` matches every spelling (exponents included). Read back by
    :func:`parse_lambda_tag`."""
    value = float(value)
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


def parse_lambda_tag(tag: str) -> float:
    """The λ_s that a tag of :func:`lambda_tag` spells ('1' -> 1.0, '1e-05' -> 1e-05): the
    one parse of it, whether from a run folder's ``ls<tag>``, a Snakemake wildcard or a
    comparison label ``ls<a>_vs_ls<b>``. ValueError for any other text."""
    if not (isinstance(tag, str) and re.fullmatch(Run.WILDCARDS["lambda_s"], tag)):
        raise ValueError(f"{tag!r}: not a λ_s tag ({Run.WILDCARDS['lambda_s']})")
    return float(tag)


def vgg_tag(layers) -> str:
    """['block4_conv4', 'block5_conv4'] -> 'b4c4-b5c4'."""
    return "-".join(name.replace("block", "b").replace("_conv", "c") for name in layers)


@dataclass(frozen=True, order=True)
class Run:
    """(study, preset, model, dataset, lambda_s, seed, VGG layer tag): one training run."""

    study: str
    preset: str
    model: str
    dataset: str
    lambda_s: float
    seed: int
    vgg: str

    #: Its folder below a results root; the fields are Snakemake's wildcards.
    PATTERN = "{study}/{preset}/{model}/{dataset}/ls{lambda_s}/{vgg}/seed{seed}"
    #: Wildcard constraints of the fields (``model``: the registered architectures).
    WILDCARDS = {"study": "[a-z][a-z0-9_]*", "preset": "[a-z][a-z0-9_]*", "dataset": "[a-z][a-z0-9]*",
                 "lambda_s": r"[0-9]+(\.[0-9]+)?(e[-+][0-9]+)?", "vgg": "[a-z0-9-]+", "seed": r"\d+"}

    def __post_init__(self):
        # one spelling of each value, whatever it came from (a path's or wildcard's tag, a CSV row, the config)
        lambda_s = parse_lambda_tag(self.lambda_s) if isinstance(self.lambda_s, str) else float(self.lambda_s)
        object.__setattr__(self, "lambda_s", lambda_s)
        object.__setattr__(self, "seed", int(self.seed))

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The field names, in the column order of every results table."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_mapping(cls, values) -> "Run":
        """From a dict, a pandas row or Snakemake wildcards (extra keys ignored)."""
        return cls(**{k: values[k] for k in cls.keys()})

    @classmethod
    def parse(cls, path: str | os.PathLike) -> "Run":
        """The run whose folder ``path`` is (or ends with)."""
        parts = Path(path).parts[-7:]
        try:
            study, preset, model, dataset, ls, vgg, seed = parts
            if not (ls.startswith("ls") and seed.startswith("seed")):
                raise ValueError
            return cls(study, preset, model, dataset, ls[2:], int(seed[4:]), vgg)  # the tag: __post_init__ parses it
        except ValueError:
            raise ValueError(f"{path}: not a run folder ({cls.PATTERN})") from None

    @classmethod
    def folders(cls, root: str | os.PathLike) -> list[Path]:
        """Every run folder below ``root``."""
        return sorted(Path(root).glob(re.sub(r"\{\w+\}", "*", cls.PATTERN)))

    def as_dict(self) -> dict:
        return asdict(self)

    def fill(self, pattern: str) -> str:
        """A path pattern with the run's wildcards (``{study}``, ``ls{lambda_s}``, ...) filled in."""
        return pattern.format(**{**self.as_dict(), "lambda_s": lambda_tag(self.lambda_s)})

    @property
    def path(self) -> str:
        """``PATTERN`` filled in: the folder below ``results/train`` and ``results/eval``."""
        return self.fill(self.PATTERN)

    def under(self, root: str | os.PathLike) -> str:
        return f"{root}/{self.path}"


#: A comparison of lambda_s variants pairs runs that agree on every other key but the seed.
GROUP_KEYS = tuple(k for k in Run.keys() if k not in (GRID_WEIGHT, "seed"))

#: The preset (config ``presets``, a run's ``preset`` key) the paper's numbers came from:
#: ``as_run``, the reference code's effective setting, which config.yaml defines (the code's
#: one spelling of it). The paper-vs-ours tables show it with :data:`DEFAULT_PRESET` beside.
PAPER_PRESET = "as_run"


def __getattr__(name: str):
    """``DEFAULT_PRESET``: the default preset (``corrected``, all four loss terms working),
    read from the config schema, its one home (the defaults of ``presets``,
    ``studies.<name>.presets`` and ``report.preset`` there are one YAML anchor). Read on
    first use: importing this module does not load the schema."""
    if name == "DEFAULT_PRESET":
        from ..config import defaults

        return defaults("report")["preset"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check_pairs(pairs, what: str = "report.comparisons") -> list[tuple[float, float]]:
    """``[[a, b], ...]`` -> ``[(a, b), ...]`` floats (their :func:`~ssimsr.pipeline.runs.weight_key`);
    ValueError naming ``what`` and the entry."""
    out = []
    for i, pair in enumerate(pairs):
        if isinstance(pair, (str, bytes)) or not hasattr(pair, "__len__") or len(pair) != 2:
            raise ValueError(f"{what}[{i}]: expected a pair [a, b] of lambda_s values, got {pair!r}")
        try:
            a, b = weight_key(pair[0]), weight_key(pair[1])  # same_weight: equal keys
        except (TypeError, ValueError):
            raise ValueError(f"{what}[{i}]: lambda_s values must be numbers, got {pair!r}") from None
        if a == b:
            raise ValueError(f"{what}[{i}]: compares lambda_s {a:g} with itself")
        if (a, b) in out:
            raise ValueError(f"{what}[{i}]: pair {pair!r} listed twice")
        out.append((a, b))
    return out
