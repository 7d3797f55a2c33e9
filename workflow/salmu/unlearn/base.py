"""The interface every unlearning method implements.

A method is one class in one module of ``salmu.unlearn.methods`` (the module's name is the method's
name), or in any importable module named in config by ``import_path``. The shared driver
(``salmu.unlearn.run``) loads the Compromised model, its frozen copy and the data, and hands the
method a ``Session`` that yields exactly the budgeted number of steps, each one forget batch and one
retain batch. Methods never see holdout splits: a session holds only forget and retain data.

Most methods write only ``loss``: the default ``unlearn`` takes one optimizer step on it per
budgeted step. Methods that are not plain gradient descent (SSD, SLUG, SalUn's mask) override
``unlearn`` and spend the same steps on gradient statistics instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import torch


@dataclass
class Batch:
    """Preprocessed images (N,3,H,W), tokenized captions (N,L) and, for forget data, the tokenized
    generic captions of the same images (the official ``sensitive_set_generic_captions.json``)."""

    images: torch.Tensor
    texts: torch.Tensor
    generic_texts: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.images)

    def with_texts(self, texts: torch.Tensor) -> Batch:
        return replace(self, texts=texts)


@dataclass
class Step:
    forget: Batch
    retain: Batch


class Session:
    """What a method works with: the model, its frozen starting copy, the budgeted steps, an
    optimizer (built on first use) and the training precision."""

    def __init__(
        self,
        model: torch.nn.Module,
        draw: Callable[[], Step],
        budget: int,
        make_optimizer: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer],
        reference: torch.nn.Module | None = None,
        grad_clip: float = 0.0,
        autocast_dtype: torch.dtype | None = None,
    ):
        self.model = model
        self.reference = reference
        self.budget = budget
        self.taken = 0
        self.optimizer_steps = 0
        self.losses: list[float] = []
        # Method-specific facts (chosen layer, mask size, ...) for the run's unlearn.json.
        self.report: dict = {}
        self._draw = draw
        self._make_optimizer = make_optimizer
        self._optimizer: torch.optim.Optimizer | None = None
        self._grad_clip = grad_clip
        self._autocast_dtype = autocast_dtype

    def steps(self) -> Iterator[Step]:
        """The remaining budgeted steps; each draws a fresh forget batch and retain batch."""
        while self.taken < self.budget:
            self.taken += 1
            yield self._draw()

    @property
    def device_type(self) -> str:
        return next(self.model.parameters()).device.type

    def autocast(self):
        """Context for forward passes: bf16 autocast under ``--precision amp_bf16``."""
        if self._autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self._autocast_dtype)

    def trainable(self) -> list[tuple[str, torch.nn.Parameter]]:
        return [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        if self._optimizer is None:
            self._optimizer = self._make_optimizer([p for _, p in self.trainable()])
        return self._optimizer

    def optimize(self, loss: torch.Tensor, shape_gradients=None) -> None:
        """Backpropagate ``loss`` and take one optimizer step (gradients clipped to the norm
        ``--grad-clip``); ``shape_gradients(model)`` may edit the gradients first."""
        optimizer = self.optimizer
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if shape_gradients is not None:
            shape_gradients(self.model)
        if self._grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self._grad_clip)
        optimizer.step()
        self.optimizer_steps += 1
        self.record(loss)

    def record(self, loss: torch.Tensor | float) -> None:
        self.losses.append(float(loss.detach() if isinstance(loss, torch.Tensor) else loss))


class UnlearningMethod:
    """Subclass, set ``name``, and implement ``loss`` (or ``unlearn``); the constructor's keyword
    arguments are the method's hyperparameters (``unlearn.methods.<name>.params`` in config); a
    method without a constructor takes none."""

    name: str = ""
    # Set True to get a frozen copy of the starting (Compromised) model as ``reference``.
    needs_reference: bool = False
    # Set False (in the class body: the config check reads it from the source) for a method that
    # edits weights directly; it then needs no ``lr``.
    takes_optimizer_steps: bool = True

    def loss(self, model, step: Step, reference=None) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement loss() or unlearn()")

    def shape_gradients(self, model) -> None:
        """Called between backward and the optimizer step (e.g. to mask gradients)."""

    def unlearn(self, session: Session) -> None:
        """One optimizer step on ``loss`` per budgeted step."""
        for step in session.steps():
            with session.autocast():
                loss = self.loss(session.model, step, session.reference)
            session.optimize(loss, self.shape_gradients)
