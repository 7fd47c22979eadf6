"""A Ray Tune trainable: fit a user's pair, report held-out log p̂ with its trust every epoch."""

from __future__ import annotations

from collections.abc import Callable

import pyro
import torch

from pvae.estimation.estimators import log_marginal
from pvae.training.fit import check_fit_options, fit
from pvae.validation import KEY_LIMIT, check_data, check_positive_int, check_seed

__all__ = ["FIT_KEYS", "tune_trainable"]

#: Keys of a Tune config that go to :func:`pvae.fit` as they are.
FIT_KEYS = ("lr", "batch_size", "elbo", "num_particles", "kl_weight", "seed")


def tune_trainable(
    build_pair: Callable[[dict], tuple[Callable, Callable]],
    train: torch.Tensor,
    held_out: torch.Tensor,
    *,
    epochs: int,
    num_samples: int = 1000,
    eval_seed: int = 0,
    **fit_options,
) -> Callable[[dict], None]:
    r"""A function trainable for Ray Tune (``tune.Tuner(tune_trainable(...),
    param_space=...)``) that trains a model/guide pair with :func:`pvae.fit` and, after every
    epoch, reports the held-out :math:`\log \hat p(x)` with the numbers that say how far to
    trust it.

    Per trial it calls ``build_pair(config)`` for a fresh ``(model, guide)`` (after clearing
    Pyro's parameter store, in the trial's process, and where a ``seed`` is given, after
    ``pyro.set_rng_seed(seed)``, so that a trial's initial weights repeat too), trains it on
    ``train`` for ``epochs`` epochs, with the config's :data:`FIT_KEYS` (``lr``,
    ``batch_size``, ``elbo``, ``num_particles``, ``kl_weight``, ``seed``; others are
    ``build_pair``'s) over ``fit_options``, and reports after each epoch (``tune.report``):

    - ``log_marginal``: the mean over ``held_out`` of :func:`pvae.log_marginal` (IS with
      ``num_samples`` draws per point from the guide, keyed to ``eval_seed``, so every epoch
      and every trial is estimated on the same draws of the noise);
    - ``stderr_mc`` and ``stderr_points``: its Monte Carlo and across-point standard errors;
    - ``reliable``, ``doubtful``, ``unreliable``: the shares of points with each trust status
      (:attr:`pvae.ImportanceEstimate.status`, calibrated on exact answers), and ``status``,
      those shares as text;
    - ``estimator`` (``"IS, K = 1000"``), ``elbo`` (the held-out ELBO from the same draws),
      ``epoch`` and ``loss`` (the epoch's training objective).

    Tune's ``training_iteration`` is then the epoch. A scheduler that stops trials early
    (ASHA) reads ``log_marginal``; compare trials by it only where ``reliable`` is high.
    The networks are built under torch's default dtype set to ``train``'s (a Tune worker starts
    with float32; the default is put back after the trial). ``held_out`` must have
    ``train``'s shape per point, dtype and device, and ``fit_options`` must be
    :func:`pvae.fit`'s (:func:`pvae.training.fit.check_fit_options`): both are checked here,
    not in each trial (each value; a combination such as ``elbo="iwae"`` with
    ``num_particles`` may be completed by the config, and ``fit`` checks it in the trial).
    ``tuner.fit()`` leaves Ray Tune's SIGINT handler installed in the calling process
    (measured with ray 2.60): the next Ctrl-C there only puts Python's handler back;
    ``TUNE_DISABLE_SIGINT_HANDLER=1`` keeps Tune from installing it.

    Example (on a local Ray, or a cluster after ``ray.init(address)``)::

        from ray import tune
        def build_pair(config):
            model = pvae.build_model("bernoulli", 64, config["latent_dim"], (128,))
            return model, pvae.build_guide("diag-normal", model, (128,))
        trainable = tune_trainable(build_pair, train, held_out, epochs=20, num_samples=500)
        tuner = tune.Tuner(
            trainable,
            param_space={"latent_dim": tune.grid_search([2, 8]), "lr": 1e-3},
            tune_config=tune.TuneConfig(metric="log_marginal", mode="max"),
        )
        best = tuner.fit().get_best_result()

    :param build_pair: ``config → (model, guide)``, a pair keeping the site contract; it must
        pickle (a module-level function, or one defined in a notebook).
    :param torch.Tensor train: training data ``(n, d)``.
    :param torch.Tensor held_out: the points whose log p̂ is reported ``(m, d)``.
    :param int epochs: epochs per trial.
    :param int num_samples: K of the held-out estimate (default 1000; the trust status needs
        K ≥ 300 to call a point reliable).
    :param int eval_seed: the key of the held-out draws (default 0).
    :param fit_options: further arguments of :func:`pvae.fit` for every trial (a config key of
        :data:`FIT_KEYS` overrides one).
    :returns: the trainable: ``tune.with_parameters`` of ``trainable(config, train,
        held_out)``, so that the data reach the trials through Ray's object store (put there
        once, when Ray starts or at once if it runs) rather than inside the pickled function,
        which Ray refuses above 95 MiB.
    """
    check_data(train, "train")
    check_data(held_out, "held_out", dim=train[0].numel(), event_shape=tuple(train.shape[1:]))
    if (held_out.dtype, held_out.device) != (train.dtype, train.device):
        raise TypeError(
            f"held_out must have train's dtype and device ({train.dtype}, {train.device}), "
            f"got {held_out.dtype}, {held_out.device}"
        )
    check_positive_int(epochs, "epochs")
    check_positive_int(num_samples, "num_samples")
    check_seed(eval_seed, "eval_seed", limit=KEY_LIMIT)  # log_marginal's keys
    if not callable(build_pair):
        raise TypeError(
            f"build_pair must be a function config → (model, guide), got {build_pair!r}"
        )
    for name in ("epochs", "callback", "progress"):
        if name in fit_options:
            raise ValueError(
                f"{name} is set by tune_trainable itself, got {name}={fit_options[name]!r}"
            )
    # Now, not in every trial; a combination (elbo="iwae" with num_particles) may be
    # completed by the trial's config, so it is left to fit.
    check_fit_options(epochs=epochs, combinations=False, **fit_options)
    from ray import tune

    def trainable(config: dict, train: torch.Tensor, held_out: torch.Tensor) -> None:
        dtype = torch.get_default_dtype()
        try:
            trial(config, train, held_out)
        finally:
            torch.set_default_dtype(dtype)  # as it was, where a trial runs in the caller

    def trial(config: dict, train: torch.Tensor, held_out: torch.Tensor) -> None:
        torch.set_default_dtype(train.dtype)
        pyro.clear_param_store()
        options = {**fit_options, **{key: config[key] for key in FIT_KEYS if key in config}}
        if options.get("seed") is not None:
            pyro.set_rng_seed(options["seed"])  # the initial weights too: a trial repeats
        model, guide = build_pair(config)

        def report(record: dict) -> None:
            estimate = log_marginal(
                model, guide, held_out, num_samples=num_samples, seed=eval_seed, progress=False
            )
            summary = estimate.summary()
            statuses = estimate.status
            shares = {
                status: statuses.count(status) / len(statuses)
                for status in ("reliable", "doubtful", "unreliable")
            }
            tune.report(
                {
                    "epoch": record["epoch"],
                    "loss": record["loss"],
                    "log_marginal": summary["log_marginal"],
                    "stderr_mc": summary["stderr_mc"],
                    "stderr_points": summary["stderr_points"],
                    "elbo": summary["elbo"],
                    "estimator": f"IS, K = {num_samples}",
                    **shares,
                    "status": ", ".join(f"{share:.0%} {name}" for name, share in shares.items()),
                }
            )

        fit(model, guide, train, epochs=epochs, callback=report, progress=False, **options)

    # The data go to Ray's object store once (when Ray starts, if it has not), not into the
    # pickled trainable, which Ray refuses above 95 MiB (a Fashion-MNIST training set is 188).
    return tune.with_parameters(trainable, train=train, held_out=held_out)
