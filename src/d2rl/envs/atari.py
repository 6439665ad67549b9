"""The `atari` suite: Atari 2600 games through ale-py (Bellemare et al. 2013).

Backends: ``native`` (default) is ale-py's ``AtariVectorEnv``, which steps all games in C++
threads and does the preprocessing there; ``gymnasium`` is one ``ALE/<Game>-v5`` env per slot
with gymnasium's ``AtariPreprocessing`` and ``FrameStackObservation`` in a ``SyncVectorEnv``.

Preprocessing (Mnih et al. 2015): frame skip 4 with a max over the last two frames, grayscale
84x84, 4 stacked frames -> uint8 obs ``[4, 84, 84]``; up to 30 no-op actions at reset.
Training-only options, dropped in evaluation envs: episodic life (a lost life ends the episode
for the learner, the game goes on) and reward clipping to {-1, 0, 1}. Both backends report
whole-game, unclipped episode statistics in ``info["episode"]`` (mask ``info["_episode"]``), mark
each life loss in a running game with ``info["life_loss"]``, press FIRE at reset and after each
life loss in games whose action set has FIRE (``fire_reset``; the FIRE replaces the agent's next
action, as baselines' FireResetEnv presses it inside the learner's reset), and cut an episode at
the agent step where it reaches ``max_episode_frames`` frames, counted from the end of the reset.

``protocol=machado`` selects the evaluation protocol of Machado et al. 2018 (JAIR): sticky
actions with probability 0.25 instead of no-op starts, and episodes that end only at game over
(no life-loss signal, in training too). ``full_action_space=true`` gives all 18 actions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorWrapper

from d2rl.envs import EnvFacts, suite_options
from d2rl.errors import D2RLError

PROTOCOLS: dict[str, dict[str, Any]] = {
    # Mnih et al. 2015 / the PPO and DQN baselines: no-op starts, life loss ends a training episode
    "dqn": {"noop_max": 30, "repeat_action_probability": 0.0, "episodic_life": True},
    # Machado et al. 2018: sticky actions are the only stochasticity; episodes end at game over
    "machado": {"noop_max": 0, "repeat_action_probability": 0.25, "episodic_life": False},
}


@dataclass
class AtariOptions:
    """``env.kwargs`` of the atari suite. ``None`` takes the protocol's value."""

    backend: str = "native"  # native (ale-py AtariVectorEnv, C++ threads) | gymnasium (SyncVectorEnv)
    protocol: str = "dqn"  # dqn | machado (see PROTOCOLS)
    noop_max: int | None = None  # random no-op actions at reset (dqn: 30, machado: 0)
    repeat_action_probability: float | None = None  # sticky actions (dqn: 0.0, machado: 0.25)
    episodic_life: bool | None = None  # training only (dqn: true, machado: false)
    reward_clipping: bool = True  # training only; episode statistics stay unclipped
    full_action_space: bool = False  # 18 actions instead of the game's minimal set
    frame_skip: int = 4
    frame_stack: int = 4
    screen_size: int = 84
    grayscale: bool = True
    fire_reset: bool = True  # press FIRE after a reset and a life loss in games that have FIRE
    max_episode_frames: int = 108_000  # 30 minutes of play at 60 Hz (Machado et al. 2018)
    num_threads: int = 0  # native backend: 0 = one per core

    def resolved(self) -> AtariOptions:
        if self.protocol not in PROTOCOLS:
            raise D2RLError(f"env.kwargs.protocol must be one of {sorted(PROTOCOLS)}, got '{self.protocol}'")
        if self.backend not in ("native", "gymnasium"):
            raise D2RLError(f"env.kwargs.backend must be 'native' or 'gymnasium', got '{self.backend}'")
        fill = {k: v for k, v in PROTOCOLS[self.protocol].items() if getattr(self, k) is None}
        return dataclasses.replace(self, **fill)


def parse_options(kwargs: dict[str, Any]) -> AtariOptions:
    return suite_options(AtariOptions, kwargs, "atari").resolved()


def rom_name(env_id: str) -> str:
    """``pong``, ``Pong``, ``ALE/Pong-v5`` or ``MsPacman`` -> the ROM name ``ms_pacman``."""
    name = env_id.split("/")[-1].split("-v")[0].replace("NoFrameskip", "")
    snake = "".join(
        "_" + c.lower() if c.isupper() and i > 0 and name[i - 1] != "_" else c.lower()
        for i, c in enumerate(name)
    )
    return snake


def camel_name(rom: str) -> str:
    return "".join(part.capitalize() for part in rom.split("_"))


class AtariTraining(VectorWrapper):
    """Episode statistics of whole games (unclipped), life losses, FIRE after a life loss, and the
    training-only life-loss episode ends and reward clipping.

    Wraps a SAME_STEP vector env whose episodes are whole games and whose info has ``lives``.
    A life loss in a running game sets ``info["life_loss"]``; with ``episodic_life`` it also sets
    ``terminated`` for the learner while the game goes on, so the returned obs is both the final
    obs of that learner-episode and the first of the next (its frame stack continues).
    ``fire_action`` (the index of FIRE, or None) replaces the next action after a life loss.
    """

    def __init__(
        self,
        env: gym.vector.VectorEnv,
        episodic_life: bool,
        reward_clipping: bool,
        fire_action: int | None = None,
    ) -> None:
        super().__init__(env)
        self.episodic_life = episodic_life
        self.reward_clipping = reward_clipping
        self.fire_action = fire_action
        n = self.num_envs
        self.game_return = np.zeros(n, dtype=np.float64)
        self.game_length = np.zeros(n, dtype=np.int64)
        self.lives = np.zeros(n, dtype=np.int64)
        self.fire_pending = np.zeros(n, dtype=bool)  # a life was lost on the last step

    def reset(self, *, seed: Any = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self.game_return[:] = 0.0
        self.game_length[:] = 0
        self.lives[:] = np.asarray(info["lives"])
        self.fire_pending[:] = False
        return obs, info

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self.fire_action is not None and self.fire_pending.any():
            actions = np.array(actions, copy=True)
            actions[self.fire_pending] = self.fire_action
        obs, reward, terminated, truncated, info = self.env.step(actions)
        reward = np.asarray(reward, dtype=np.float64)
        terminated = np.asarray(terminated, dtype=bool)
        truncated = np.asarray(truncated, dtype=bool) & ~terminated  # a game over at the cap ends it
        game_over = terminated | truncated
        self.game_return += reward
        self.game_length += 1
        if game_over.any():
            info["episode"] = {"r": self.game_return.copy(), "l": self.game_length.copy()}
            info["_episode"] = game_over.copy()
            self.game_return[game_over] = 0.0
            self.game_length[game_over] = 0
        lives = np.asarray(info["lives"]).astype(np.int64)
        life_lost = (lives < self.lives) & ~game_over
        if life_lost.any():
            info["life_loss"] = life_lost
        if self.episodic_life and life_lost.any():
            terminated = terminated | life_lost
            final = info.get("final_obs")
            if final is None:
                final = np.empty(self.num_envs, dtype=object)
            for i in np.flatnonzero(life_lost):  # the game goes on: its next obs ends this life
                final[i] = obs[i]
            info["final_obs"] = final
            info["_final_obs"] = np.asarray(info.get("_final_obs", game_over)) | life_lost
        self.fire_pending = life_lost
        self.lives = lives
        if self.reward_clipping:
            reward = np.sign(reward)
        return obs, reward.astype(np.float32), terminated, truncated, info


def _native(rom: str, num_envs: int, opt: AtariOptions, max_frames: int) -> gym.vector.VectorEnv:
    from ale_py.vector_env import AtariVectorEnv

    return AtariVectorEnv(
        rom,
        num_envs,
        num_threads=opt.num_threads,
        max_num_frames_per_episode=max_frames,
        repeat_action_probability=float(opt.repeat_action_probability or 0.0),
        full_action_space=opt.full_action_space,
        autoreset_mode=AutoresetMode.SAME_STEP,
        img_height=opt.screen_size,
        img_width=opt.screen_size,
        grayscale=opt.grayscale,
        stack_num=opt.frame_stack,
        frameskip=opt.frame_skip,
        noop_max=int(opt.noop_max or 0),
        episodic_life=False,  # ale-py's resets the whole game at a life loss; AtariTraining does it instead
        reward_clipping=False,
        use_fire_reset=opt.fire_reset,
    )


class FireOnReset(gym.Wrapper):
    """Press FIRE for one frame after each reset, as the native backend does (before the no-ops)."""

    def __init__(self, env: gym.Env, fire_action: int) -> None:
        super().__init__(env)
        self.fire_action = fire_action

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        self.env.reset(seed=seed, options=options)
        obs, _, terminated, truncated, info = self.env.step(self.fire_action)
        if terminated or truncated:  # never seen in practice; start over without FIRE
            return self.env.reset(seed=seed, options=options)
        return obs, info


def _gymnasium(
    rom: str, num_envs: int, opt: AtariOptions, max_frames: int, render_mode: str | None = None
) -> gym.vector.VectorEnv:
    import ale_py

    gym.register_envs(ale_py)
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation, TimeLimit

    def make() -> gym.Env:
        env = gym.make(
            f"ALE/{camel_name(rom)}-v5",
            frameskip=1,
            repeat_action_probability=float(opt.repeat_action_probability or 0.0),
            full_action_space=opt.full_action_space,
            max_num_frames_per_episode=0,  # no ALE cap: it would count the reset's no-op frames
            render_mode=render_mode,  # rgb_array: the full 210x160 RGB screen
        )
        names = env.unwrapped.get_action_meanings()  # type: ignore[attr-defined]
        fire = _fire_index(names) if opt.fire_reset else None
        if fire is not None:
            env = FireOnReset(env, fire)
        env = AtariPreprocessing(
            env,
            noop_max=int(opt.noop_max or 0),
            frame_skip=opt.frame_skip,
            screen_size=opt.screen_size,
            grayscale_obs=opt.grayscale,
        )
        # the native cap counts frames from the end of the reset and stops mid-skip: same agent step
        env = TimeLimit(env, max_episode_steps=-(-max_frames // opt.frame_skip))
        return FrameStackObservation(env, opt.frame_stack)

    return gym.vector.SyncVectorEnv([make] * num_envs, autoreset_mode=AutoresetMode.SAME_STEP)


def _fire_index(action_names: list[str]) -> int | None:
    return action_names.index("FIRE") if "FIRE" in action_names else None


def _action_names(envs: gym.vector.VectorEnv) -> list[str]:
    """Names of the agent's actions (``NOOP``, ``FIRE``, ...) for either backend."""
    if isinstance(envs, gym.vector.SyncVectorEnv):
        return list(envs.envs[0].unwrapped.get_action_meanings())  # type: ignore[attr-defined]
    return [a.name for a in envs.ale.get_action_set()]  # type: ignore[attr-defined]


def make_vec(
    env_cfg: Any, num_envs: int, render_mode: str | None = None, evaluation: bool = False
) -> gym.vector.VectorEnv:
    from ale_py import roms

    opt = parse_options(dict(env_cfg.kwargs or {}))
    rom = rom_name(str(env_cfg.id))
    if rom not in roms.get_all_rom_ids():
        raise D2RLError(
            f"unknown Atari game '{env_cfg.id}'; ale-py ships: {', '.join(roms.get_all_rom_ids())}"
        )
    if render_mode not in (None, "rgb_array"):
        raise D2RLError(f"the atari suite renders only render_mode=rgb_array, not {render_mode}")
    max_frames = opt.max_episode_frames
    if env_cfg.max_episode_steps is not None:  # agent steps -> emulator frames
        max_frames = int(env_cfg.max_episode_steps) * opt.frame_skip
    if opt.backend == "native" and render_mode is None:
        envs = _native(rom, num_envs, opt, max_frames)
    else:  # ale-py's vector interface renders nothing: a rendering env runs the gymnasium backend
        envs = _gymnasium(rom, num_envs, opt, max_frames, render_mode)
    episodic_life = bool(opt.episodic_life) and not evaluation
    wrapped = AtariTraining(
        envs,
        episodic_life=episodic_life,
        reward_clipping=opt.reward_clipping and not evaluation,
        fire_action=_fire_index(_action_names(envs)) if opt.fire_reset else None,
    )
    wrapped.d2rl_facts = EnvFacts(  # type: ignore[attr-defined]
        pixels=True,
        frame_stack=opt.frame_stack,
        rgb=not opt.grayscale,
        lives=episodic_life,
        episode_stats=True,
    )
    return wrapped
