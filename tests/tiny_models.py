"""Tiny causal LMs and tasks, built locally, for offline tests and benchmarks of the evaluate stage
and of the lm-eval importer (:func:`run_lm_eval_cli` runs lm-eval's own command line on them).

Everything here is deterministic and needs no network:

* a synthetic "world" of facts (animals eat foods, things have colours, people live in
  towns), from which come a training corpus and the two local tasks in
  ``tests/data/tasks`` (a multiple-choice task and a LAMBADA-like last-word task);
* a byte-level BPE tokenizer (vocab 320: few merges, so answers span several tokens)
  trained on that corpus;
* GPT-NeoX models with 2 layers and hidden sizes 16, 32 and 64 (a three-size ladder) and OPT
  ones with 32 and 64, trained for a few AdamW steps so that longer-trained checkpoints have
  lower task loss;
* a fake Hugging Face hub cache, so that ``org/name`` ids with ``revision=stepN`` load
  through transformers' real offline code path (and a missing revision fails there).
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

TASKS_DIR = Path(__file__).parent / "data" / "tasks"
EOS = "<|endoftext|>"

ANIMAL_FOOD = {
    "dog": "meat", "cow": "grass", "cat": "fish", "bird": "seeds", "horse": "hay",
    "bee": "nectar", "panda": "bamboo", "rabbit": "carrots", "mouse": "cheese", "bear": "honey",
}
THING_COLOUR = {
    "sky": "blue", "grass": "green", "snow": "white", "coal": "black", "blood": "red",
    "sun": "yellow", "orange": "orange", "plum": "purple", "chocolate": "brown", "flamingo": "pink",
}
PERSON_TOWN = {
    "anna": "paris", "ben": "london", "carl": "berlin", "dora": "madrid", "emil": "rome",
    "fay": "vienna", "gus": "oslo", "hana": "tokyo", "ivan": "moscow", "jade": "dublin",
}
FACTS = (
    ("the {} eats", ANIMAL_FOOD),
    ("the colour of the {} is", THING_COLOUR),
    ("{} lives in", PERSON_TOWN),
)


def sentences() -> list[str]:
    """Every fact of the world, as one sentence each."""
    return [f"{template.format(k)} {v}" for template, table in FACTS for k, v in table.items()]


def corpus(n_lines: int = 400, seed: int = 0) -> list[str]:
    """Training text: lines of shuffled facts, so each fact is seen many times."""
    rng = random.Random(seed)
    facts = sentences()
    return [" . ".join(rng.sample(facts, 6)) + " ." for _ in range(n_lines)]


def task_docs(seed: int = 0) -> tuple[list[dict], list[dict]]:
    """The multiple-choice and last-word documents (what tests/data/tasks/*.jsonl hold)."""
    rng = random.Random(seed)
    mc, lastword = [], []
    for template, table in FACTS:
        answers = sorted(set(table.values()))
        for key, gold in table.items():
            wrong = rng.sample([a for a in answers if a != gold], 3)
            choices = wrong + [gold]
            rng.shuffle(choices)
            mc.append({"question": template.format(key), "choices": choices, "answer": choices.index(gold)})
            lastword.append({"text": f"{template.format(key)} {gold}"})
    # A few docs are enough, and fewer keep the tests fast; keep all three kinds of fact.
    return mc[::2], lastword[1::2]


def write_task_data(directory: Path = TASKS_DIR) -> None:
    """Regenerate the checked-in JSONL files (run by hand if the world above changes)."""
    mc, lastword = task_docs()
    for name, docs in (("tiny_mc.jsonl", mc), ("tiny_lastword.jsonl", lastword)):
        (directory / name).write_text("".join(json.dumps(d, sort_keys=True) + "\n" for d in docs))


def install_tasks(dest: Path, source: Path = TASKS_DIR) -> Path:
    """Copy the task YAMLs to ``dest`` with absolute data paths (lm-eval resolves them from the cwd)."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.glob("*.yaml")):
        text = path.read_text().replace("DATA_DIR", str(source.resolve()))
        (dest / path.name).write_text(text)
    return dest


def train_tokenizer(directory: Path, vocab_size: int = 320):
    """Byte-level BPE (GPT-2/NeoX style) trained on the corpus, saved as a transformers tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus(), trainer=trainer)
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, bos_token=EOS, unk_token=EOS, pad_token=EOS)
    hf.save_pretrained(directory)
    return hf


@dataclass(frozen=True)
class TinySpec:
    name: str  # model id: "org/name" ids go to the fake hub, plain names to a local folder
    arch: str  # "gpt_neox" or "opt"
    hidden: int
    checkpoints: tuple[int, ...]  # training steps saved; the last one is also "main"
    heads: int = 4


# xs, s, m: a three-size ladder (lm-eval import tests); s and m: the evaluate stage's tests
NEOX = (TinySpec("capcast-test/tiny-neox-xs", "gpt_neox", 16, (4, 40), heads=2),
        TinySpec("capcast-test/tiny-neox-s", "gpt_neox", 32, (4, 40)),
        TinySpec("capcast-test/tiny-neox-m", "gpt_neox", 64, (4, 40)))
OPT = (TinySpec("tiny-opt-s", "opt", 32, (40,)),
       TinySpec("tiny-opt-m", "opt", 64, (40,)))
TOKENS_PER_STEP = 8 * 64  # batch 8 x sequence 64


def make_config(arch: str, hidden: int, vocab_size: int, eos_id: int, heads: int = 4):
    from transformers import GPTNeoXConfig, OPTConfig

    if arch == "gpt_neox":
        return GPTNeoXConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=2, num_attention_heads=heads,
                             intermediate_size=4 * hidden, max_position_embeddings=256, bos_token_id=eos_id,
                             eos_token_id=eos_id, pad_token_id=eos_id)
    return OPTConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=2, num_attention_heads=heads,
                     ffn_dim=4 * hidden, max_position_embeddings=256, word_embed_proj_dim=hidden, dropout=0.0,
                     bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=eos_id)


def _batches(tokenizer, seq_len: int = 64, batch: int = 8, seed: int = 0):
    """Endless batches of corpus token windows (eos between lines), deterministic."""
    import torch

    ids = []
    for line in corpus():
        ids += tokenizer(line)["input_ids"] + [tokenizer.eos_token_id]
    data = torch.tensor(ids)
    gen = torch.Generator().manual_seed(seed)
    while True:
        starts = torch.randint(0, len(data) - seq_len - 1, (batch,), generator=gen)
        yield torch.stack([data[s:s + seq_len] for s in starts])


def train_checkpoints(spec: TinySpec, tokenizer, lr: float = 3e-3):
    """Yield (step, model) at each of ``spec.checkpoints``; a few AdamW steps on the corpus."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(make_config(spec.arch, spec.hidden, len(tokenizer), tokenizer.eos_token_id,
                                                         spec.heads))
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    batches = _batches(tokenizer)
    step = 0
    for target in spec.checkpoints:
        model.train()
        while step < target:
            x = next(batches)
            loss = model(input_ids=x, labels=x).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
            step += 1
        model.eval()
        yield step, model


def _hub_dir(hub_cache: Path, repo_id: str) -> Path:
    return hub_cache / ("models--" + repo_id.replace("/", "--"))


def _save_revision(model, tokenizer, hub_cache: Path, repo_id: str, revision: str) -> None:
    """Lay a checkpoint out as huggingface_hub caches it: refs/<revision> -> snapshots/<commit>/."""
    import hashlib

    commit = hashlib.sha1(f"{repo_id}@{revision}".encode()).hexdigest()
    repo = _hub_dir(hub_cache, repo_id)
    snapshot = repo / "snapshots" / commit
    model.save_pretrained(snapshot)
    tokenizer.save_pretrained(snapshot)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / revision).write_text(commit)


@dataclass
class TinyZoo:
    """What :func:`build_zoo` made: where things are and what the tests may assert on."""
    root: Path
    hub_cache: Path  # point huggingface_hub.constants.HF_HUB_CACHE here
    include_path: Path  # local task YAMLs, data paths made absolute
    local: dict  # name -> local folder (OPT models)
    hub: dict  # repo id -> revisions available


def build_zoo(root: Path, specs=NEOX + OPT) -> TinyZoo:
    """Build tokenizer, models and tasks under ``root`` (a few seconds on one CPU core)."""
    root.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(root / "tokenizer")
    zoo = TinyZoo(root, root / "hub", install_tasks(root / "tasks"), {}, {})
    for spec in specs:
        for step, model in train_checkpoints(spec, tokenizer):
            if "/" in spec.name:
                _save_revision(model, tokenizer, zoo.hub_cache, spec.name, f"step{step}")
                zoo.hub.setdefault(spec.name, []).append(f"step{step}")
                if step == spec.checkpoints[-1]:
                    _save_revision(model, tokenizer, zoo.hub_cache, spec.name, "main")
            else:
                path = root / "local" / spec.name
                model.save_pretrained(path)
                tokenizer.save_pretrained(path)
                zoo.local[spec.name] = path
    return zoo


def run_lm_eval_cli(zoo: TinyZoo, out: Path, checkpoints, tasks, jobs: int = 2, extra=()) -> list[Path]:
    """lm-eval's own command line (``python -m lm_eval run ... --log_samples --output_path out``) on
    (model, revision) pairs of the zoo, ``jobs`` processes at a time, offline; returns ``out``'s
    results files.  Raises with lm-eval's last lines when a run fails."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_CACHE": str(zoo.hub_cache), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    commands = [[sys.executable, "-m", "lm_eval", "run", "--model", "hf",
                 "--model_args", f"pretrained={model}" + (f",revision={revision}" if revision else ""),
                 "--tasks", ",".join(tasks), "--include_path", str(zoo.include_path), "--device", "cpu",
                 "--batch_size", "8", "--log_samples", "--output_path", str(out), *extra]
                for model, revision in checkpoints]
    running = []
    for i, cmd in enumerate(commands):
        running.append(subprocess.Popen(cmd, env=env, cwd=out.parent, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True))
        if len(running) == jobs or i == len(commands) - 1:
            for proc in running:
                log, _ = proc.communicate()
                if proc.returncode:
                    raise RuntimeError(f"lm_eval failed ({proc.args}):\n" + "\n".join(log.splitlines()[-15:]))
            running = []
    return sorted(Path(out).rglob("results_*.json"))
