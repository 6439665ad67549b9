"""The built-in environment suites, declared without importing them (``make_vec`` is a
``"module:function"`` string loaded on first use), registered by d2rl's pyproject.toml."""

from __future__ import annotations

from d2rl.specs import EnvSuiteSpec

GYM = EnvSuiteSpec(
    name="gym",
    make_vec="d2rl.envs.gym_suite:make_vec",
    description="any registered gymnasium id (classic control, Box2D, MuJoCo, toy text)",
    # the smoke matrix: classic control, Box2D (discrete and continuous), MuJoCo
    smoke=(
        "env=cartpole",
        "env=pendulum",
        "env=lunarlander env.max_episode_steps=100",
        "env=lunarlander_continuous env.max_episode_steps=100",
        "env=reacher",
    ),
)

ATARI = EnvSuiteSpec(
    "atari",
    "d2rl.envs.atari:make_vec",
    ("ale_py",),
    "pip install 'd2rl[atari]'",
    "Atari 2600 games via ale-py (native batched C++ vector env; gymnasium fallback)",
    # the smoke matrix: without lives (Pong) and with (Breakout), both backends. 64 agent steps is
    # shorter than any Breakout game (5 lives of >= 17 steps each, measured with random play), so
    # every whole game ends at the cap, while a life is lost within it in most games.
    smoke=tuple(
        f"env=atari_{game} env.kwargs.backend={backend} env.max_episode_steps=64"
        for game in ("pong", "breakout")
        for backend in ("native", "gymnasium")
    ),
)

CARRACING = EnvSuiteSpec(
    "carracing",
    "d2rl.envs.carracing:make_vec",
    ("Box2D",),
    "pip install 'd2rl[box2d]'",
    "CarRacing from pixels (Box2D), continuous or discrete actions, action repeat",
    # the smoke matrix: continuous and discrete actions; short runs (a rendered step costs ~15 ms)
    smoke=(
        "env=carracing env.max_episode_steps=30 trainer.total_env_steps=128",
        "env=carracing env.kwargs.continuous=false env.max_episode_steps=30 trainer.total_env_steps=128",
    ),
)

DMC = EnvSuiteSpec(
    "dmc",
    "d2rl.envs.dmc:make_vec",
    ("dm_control",),
    "pip install 'd2rl[dmc]'",
    "DeepMind Control Suite tasks (<domain>-<task>), state vector or pixel observations",
    # the smoke matrix: state and pixel observations
    smoke=(
        "env=dmc_cartpole_swingup env.max_episode_steps=100",
        # short: a frame rendered with software EGL costs ~45 ms at any size
        "env=dmc_cartpole_swingup env.kwargs.pixels=true env.kwargs.image_size=64"
        " env.max_episode_steps=10 trainer.total_env_steps=64",
    ),
)

PROCGEN = EnvSuiteSpec(
    "procgen",
    "d2rl.envs.procgen:make_vec",
    ("procgen",),
    "pip install 'd2rl[procgen]'",
    "the 16 Procgen games (procgen-mirror, gym3 API) with train/test level splits",
    # the smoke matrix. Episodes end by the game's own rules (env.max_episode_steps is refused): an
    # untrained greedy policy holds one action and times out after 1000 steps, a sampled one ends
    # sooner (random play: 540 steps on average), so the smoke run evaluates stochastically.
    smoke=(
        "env=procgen_coinrun network=impala_resnet network.channels=[8,8,8] network.features=32"
        " trainer.eval_deterministic=false",
    ),
)
