"""Saving and restoring a :class:`~losslab.search.gp.screening.LossScreen`'s memory as JSON.

A search saves its screen with its own state, so that a resumed search keeps finding the
duplicates of what it screened before. What the verdicts depend on (the probe and the run
settings) goes with them: a state taken elsewhere keeps only what holds on any probe.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import math
import warnings

import numpy as np

from losslab.losses import parse_loss
from losslab.search.gp.verdict import Verdict

__all__ = ["ScreenState"]

_STATE_VERSION = 1


class ScreenState:
    """``state_dict`` and ``load_state_dict`` of :class:`~losslab.search.gp.screening.LossScreen`,
    which holds the attributes read here (probe, run settings, passed texts, their gradient
    sketches, cached rejections, counts)."""

    def _identity(self) -> dict:
        """What the saved verdicts depend on: the probe and the run settings."""
        digest = hashlib.sha256()
        for tensor in (self.probe.logits.float(), self.probe.labels.long()):
            digest.update(str(tuple(tensor.shape)).encode())
            digest.update(tensor.contiguous().numpy().tobytes())
        return {
            "probe": digest.hexdigest(),
            "steps": self.steps,
            "lr": self.lr,
            "min_gain": self.min_gain,
            "min_end": self.min_end,
        }

    def state_dict(self) -> dict:
        """A JSON-able snapshot: passed texts with their hashes and sketches, cached
        rejections and counts, with the probe and settings they hold for."""
        sketches = dict(zip(self._texts, self._sketches))
        passed = []
        for text, digest in self._passed.items():
            entry = {"text": text, "hash": digest}
            if text in sketches:
                entry["sketch"] = base64.b64encode(sketches[text].astype("<f4").tobytes()).decode()
            passed.append(entry)
        return {
            "version": _STATE_VERSION,
            **self._identity(),
            "passed": passed,
            "rejected": {
                text: {
                    "stage": v.stage,
                    "reason": v.reason,
                    "same_as": v.same_as,
                    "gradient_hash": v.gradient_hash,
                    "gain": None if math.isnan(v.gain) else v.gain,
                }
                for text, v in self._rejected.items()
            },
            "counts": dict(self.counts),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict`, replacing what this screen holds.

        An empty mapping leaves the screen empty (the first generation of a search). A state
        taken on another probe or with other run settings keeps only what holds on any probe:
        the canonical texts that passed (their duplicates are still reported) and the counts;
        its cached rejections and gradient fingerprints are dropped, with a warning.

        Raises:
            ValueError: a state of an unknown version.
        """
        self._passed, self._by_hash, self._texts, self._rejected = {}, {}, [], {}
        self._sketches = np.zeros((0, self._sketches.shape[1]), dtype=np.float32)
        self.counts = collections.Counter()
        if not state:
            return
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"unknown screen state version {state.get('version')!r}")
        mismatched = [k for k, v in self._identity().items() if state.get(k) != v]
        if mismatched:
            warnings.warn(
                f"the screen state was taken with another {', '.join(mismatched)}: only the "
                "texts that passed are kept, not its rejections nor gradient fingerprints",
                stacklevel=2,
            )
        for entry in state.get("passed", []):
            if mismatched or "sketch" not in entry:
                self._passed.setdefault(entry["text"], "")
            else:
                row = np.frombuffer(base64.b64decode(entry["sketch"]), dtype="<f4")
                self._record(entry["text"], entry["hash"], row)

        for text, fields in ({} if mismatched else state.get("rejected", {})).items():
            try:
                spec = parse_loss(text)
            except ValueError:
                spec = None
            fields = dict(fields)
            gain = fields.pop("gain", None)
            gain = math.nan if gain is None else float(gain)
            self._rejected[text] = Verdict(spec=spec, gain=gain, **fields)
        self.counts.update(state.get("counts", {}))
