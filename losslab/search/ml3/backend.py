"""``backend: ml3``: meta-learned loss networks (ML3), each proposed and evaluated as a candidate.

For each of ``ml3.networks`` loss networks (each from its own seed, derived from the study's),
the backend meta-trains the network on the study's data (``runner.py``) and proposes each of
its ``ml3.checkpoints`` snapshots as the one-term candidate ``[lossnet:<hash>]`` with the
space's fixed schedules, named ``ml3-<i> (dice base)`` (``ml3-<i>@<step> (dice base)`` when a
network has several snapshots). A proposal is evaluated like any candidate: a fresh model
trained at the study's fidelity, in a nested MLflow run that logs the network's file.

Jobs and batches: a job is ``<network>:<checkpoint>``, proposed once. A batch holds the jobs of
the next network; its meta-training runs inside :meth:`ask`, so a network's snapshots are
evaluated before the next network is meta-trained. With ``ml3.group`` above 1 (``auto``: on
CUDA) and the ``torch.func`` engine, the network is meta-trained together with the next ones
that have no usable record, up to the group's size, as one batched group
(``group.meta_train_group``; halved when out of memory); each network's record, files and
MLflow metrics are then those it would have had alone, up to float rounding.
:meth:`batch_size` is 0 once every job was proposed and is in the ledger. A meta-training that fails (``max_consecutive_skips`` non-finite
meta-steps in a row, an error) makes each of its jobs an invalid proposal: a failed trial with
the reason, and the study goes on with the next network.

Files: the networks are saved as ``lossnets/<hash>.lossnet`` in the study's folder (beside its
store, ``ledger.study_folder``), which the backend puts on the search path of learned terms.

MLflow: the study's parent run gets ``ml3/<i>/outer_loss`` and ``ml3/<i>/val_objective`` at
every outer step of network ``i``, and the tags ``ml3.<i>.status`` and ``ml3.<i>.hashes`` (and
``ml3.<i>.reason``) when its meta-training ends. The backend has no way to log a file on the
parent run, so the ``.lossnet`` files are logged by the evaluation runs (``lossnets/``).

State (``context.state``): ``seed`` (the first worker's), ``networks`` (per network: the
snapshots' hashes, status, start and end of the curve, steps, seconds, and the digest of the
settings it was meta-trained with) and ``issued`` (the jobs proposed). So a resumed study never
meta-trains a network again whose record matches its settings and whose files are on the
search path; a network killed mid-meta-training left no record and is meta-trained again (the
same seed gives the same network); an interrupted evaluation comes back as the store's retry,
and a job issued but never started is proposed again. Two workers starting together may both
meta-train the first network; they obtain the same files when they share the seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from losslab.candidate import Candidate
from losslab.losses.learned_term import LearnedTerm, add_search_folder, find_network
from losslab.models import ModelSpec, list_sizes
from losslab.search.backend import BackendContext, Proposal, SearchBackend, Slot
from losslab.search.ml3.runner import MetaTrained, meta_train_network, meta_train_networks
from losslab.search.ml3.settings import Ml3Settings, check_settings, fixed_schedules
from losslab.search.space import SearchSpace
from losslab.training import TrainConfig
from losslab.training.config import resolve_device

__all__ = ["Ml3Backend"]

JOB, NETWORKS, ISSUED = "ml3.job", "networks", "issued"


def _study_setup(context: BackendContext) -> tuple[TrainConfig, Path]:
    """The train config of one evaluation and the study's folder.

    From ``context.train`` / ``context.folder`` (the study fills both); a bare context gets the
    defaults.
    """
    return context.train or TrainConfig(), Path(context.folder or ".")


def _check_model(settings: Ml3Settings, train: TrainConfig, num_classes: int) -> None:
    """The study's model exists at ``ml3.model_size`` for the meta-training patch."""
    sizes = list_sizes(train.model)
    if settings.model_size not in sizes:
        raise ValueError(
            f"ml3.model_size: {settings.model_size!r} is not a size of {train.model!r}; "
            f"sizes: {', '.join(sizes)}"
        )
    patch = settings.patch_size or train.patch_size
    try:
        ModelSpec.create(
            train.model,
            num_classes=num_classes,
            patch_size=patch,
            size=settings.model_size,
            **train.model_overrides,
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"ml3.patch_size: {exc}") from None


class Ml3Backend(SearchBackend):
    """Meta-learned loss networks (see the module docstring)."""

    name: ClassVar[str] = "ml3"
    space_keys: ClassVar[frozenset[str]] = frozenset({"target"})

    @classmethod
    def check_settings(cls, raw: Mapping[str, Any], *, epochs: int) -> Ml3Settings:
        return check_settings(raw)

    @classmethod
    def check_space(cls, space: SearchSpace) -> None:
        fixed_schedules(space)

    def __init__(self, context: BackendContext):
        super().__init__(context)
        self.settings: Ml3Settings = context.settings
        self.state = context.state
        self.class_schedule, self.term_schedule = fixed_schedules(context.space)
        self.train, folder = _study_setup(context)
        self.folder = add_search_folder(folder / "lossnets")
        if context.dataset is not None:
            _check_model(self.settings, self.train, context.dataset.num_classes)
        self.recipe = self.settings.digest()

    # -- the jobs -----------------------------------------------------------------------------

    def _jobs(self) -> list[str]:
        n, c = self.settings.networks, self.settings.checkpoints
        return [f"{i}:{j}" for i in range(n) for j in range(c)]

    def _issued(self) -> list[str]:
        return list(self.state.get(ISSUED, []))

    def _available(self) -> list[str]:
        issued = set(self._issued())
        return [job for job in self._jobs() if job not in issued]

    def _outstanding(self) -> list[str]:
        """Jobs issued but not in the ledger: interrupted (the store hands them back as
        retries), never started, or running on another worker."""
        done = {r.params.get(JOB) for r in self.context.records()}
        return [job for job in self._issued() if job not in done]

    def batch_size(self) -> int:
        """The jobs of the next network; when every job was issued, the outstanding ones."""
        available = self._available()
        if available:
            network = available[0].partition(":")[0]
            return sum(job.partition(":")[0] == network for job in available)
        return len(self._outstanding())

    def ask(self, slots: Sequence[Slot]) -> list[Proposal]:
        proposals = []
        for slot in slots:
            if slot.retry is not None:  # an interrupted evaluation runs again as it was
                proposals.append(slot.retry)
                continue
            available = self._available()
            if available:
                job = available[0]
            else:  # issued but not finished: lost before it started, or running elsewhere
                outstanding = self._outstanding()
                job = outstanding[0] if outstanding else self._jobs()[0]
            proposals.append(self._proposal(job))
            issued = self._issued()
            if job not in issued:  # after the meta-training: a killed one is not issued
                self.state.put(ISSUED, [*issued, job])
        return proposals

    def _proposal(self, job: str) -> Proposal:
        i, j = (int(part) for part in job.split(":"))
        params = {JOB: job, "ml3.network": i, "ml3.checkpoint": j}
        record = self._network(i)
        if record["status"] != "ok":
            why = f"ml3: the meta-training of network {i} failed: {record['reason']}"
            return Proposal(None, params=params, invalid=why)
        digest = record["hashes"][j]
        step = self.settings.checkpoint_steps()[j]
        at = f"@{step}" if self.settings.checkpoints > 1 else ""
        candidate = Candidate(
            terms=(LearnedTerm(digest),),
            class_schedule=self.class_schedule,
            term_schedule=self.term_schedule,
            name=f"ml3-{i}{at} ({self.settings.base} base)",
        )
        tags = {
            "ml3.network": str(i),
            "ml3.outer_steps": str(step),
            "ml3.hash": digest,
        }
        return Proposal(candidate, params={**params, "ml3.hash": digest}, tags=tags)

    # -- the networks -------------------------------------------------------------------------

    def _seed(self, network: int) -> int:
        """Network ``network``'s seed, from the first worker's seed (kept in the store)."""
        base = self.state.get("seed")
        if base is None:
            base = int(self.context.seed)
            self.state.put("seed", base)
        return (base * 1_000_003 + 7919 * network) % 2**31

    def _usable(self, record: Mapping[str, Any] | None) -> bool:
        """A record meta-trained with these settings whose files are on the search path."""
        if not record or record.get("recipe") != self.recipe:
            return False
        try:
            for digest in record.get("hashes", []):
                find_network(digest)
        except FileNotFoundError:
            return False
        return True

    def _network(self, i: int) -> dict[str, Any]:
        """Network ``i``'s record, meta-training it first when it has no usable one (with the
        next networks that have none, up to :meth:`_group_size`, as one group)."""
        record = self.state.get(NETWORKS, {}).get(str(i))
        if self._usable(record):
            return record
        if self.context.dataset is None:
            return {"status": "failed", "reason": "the study gave no dataset", "hashes": []}
        size = self._group_size()
        members = [i]
        for j in range(i + 1, self.settings.networks):
            if len(members) >= size:
                break
            if not self._usable(self.state.get(NETWORKS, {}).get(str(j))):
                members.append(j)
        seeds = [self._seed(j) for j in members]
        args = (self.settings, self.context.dataset, self.train, self.context.objective)
        if len(members) == 1:
            trained = [meta_train_network(*args, seeds[0], self.folder, self._on_step(i))]
        else:
            callbacks = [self._on_step(j) for j in members]
            trained = meta_train_networks(*args, seeds, self.folder, callbacks)
        records = [self._record(j, s, t) for j, s, t in zip(members, seeds, trained)]
        return records[0]

    def _group_size(self) -> int:
        """``ml3.group`` (``auto``: 1 on the CPU, 8 on CUDA), 1 with ``engine: higher``."""
        return self.settings.group_size(resolve_device(self.train.device).type)

    def _on_step(self, i: int) -> Callable[[int, float, float], None]:
        log = self.context.log

        def on_step(step: int, outer: float, value: float) -> None:
            log({f"ml3/{i}/outer_loss": outer, f"ml3/{i}/val_objective": value}, step)

        return on_step

    def _record(self, i: int, seed: int, trained: MetaTrained) -> dict[str, Any]:
        """Keep network ``i``'s record in the state and log its tags and totals."""
        record = {**trained.to_dict(), "recipe": self.recipe, "seed": seed}
        networks = dict(self.state.get(NETWORKS, {}))  # read again: another worker may write
        networks[str(i)] = record
        self.state.put(NETWORKS, networks)
        tags = {f"ml3.{i}.status": trained.status, f"ml3.{i}.hashes": ",".join(trained.hashes)}
        if trained.reason:
            tags[f"ml3.{i}.reason"] = trained.reason
        metrics = {f"ml3/{i}/seconds": trained.seconds, f"ml3/{i}/skipped": trained.skipped}
        self.context.log(
            {k: v for k, v in metrics.items() if math.isfinite(v)}, trained.steps, tags
        )
        return record
