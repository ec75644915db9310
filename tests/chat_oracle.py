#!/usr/bin/env python3
"""The reference renderings for tests/test_chat.c: each family's real
chat template (../shared/vocab/templates, or tests/templates for the
families without one there) rendered by Jinja2 the way Hugging Face's
apply_chat_template does (trim_blocks, lstrip_blocks, loopcontrols),
for a set of conversations, every turn of each.

Usage: chat_oracle.py SHARED_TEMPLATES_DIR FIXTURE_DIR
Writes records of netstrings (LEN:BYTES,) to stdout:
  family, template path, vocab (qwen2, llama3 or -), bos, eos,
  has_system (0/1), system, n_turns, then n_turns users and
  n_turns - 1 replies, then the rendering.
Exits 77 when python3-jinja2 is missing.
"""
import os
import sys

try:
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment
except ImportError:
    sys.stderr.write("SKIP: python3-jinja2 is not installed\n")
    sys.exit(77)

import json
import struct

DATE = "26 Jul 2024"

QWEN = ("<|endoftext|>", "<|im_end|>")
LLAMA3 = ("<|begin_of_text|>", "<|end_of_text|>")
SPM = ("<s>", "</s>")

# family, template file (S: shared templates, F: fixture, V: the
# tokenizer.chat_template of a shared vocabulary), vocab, bos/eos
FAMILIES = [
    ("chatml", "F", "chatml.jinja", "qwen2", QWEN),
    ("chatml", "S", "qwen2.jinja", "qwen2", QWEN),
    ("qwen2.5", "S", "Qwen-Qwen2.5-7B-Instruct.jinja", "qwen2", QWEN),
    ("smollm3", "S", "HuggingFaceTB-SmolLM3-3B.jinja", "qwen2", QWEN),
    ("deepseek-r1", "S", "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja",
     "qwen2", QWEN),
    ("llama3", "S", "llama3.jinja", "llama3", LLAMA3),
    ("llama3.1", "S", "meta-llama-Llama-3.1-8B-Instruct.jinja", "llama3",
     LLAMA3),
    ("llama3.1", "S", "meta-llama-Llama-3.2-3B-Instruct.jinja", "llama3",
     LLAMA3),
    ("llama2", "F", "llama2.jinja", "-", SPM),
    ("mistral", "S", "mistralai-Mistral-Nemo-Instruct-2407.jinja", "-", SPM),
    ("phi3", "S", "microsoft-Phi-3.5-mini-instruct.jinja", "-",
     ("<s>", "<|endoftext|>")),
    ("phi3", "V", "ggml-vocab-phi-3.gguf", "-", ("<s>", "<|endoftext|>")),
    ("gemma", "S", "google-gemma-2-2b-it.jinja", "-", ("<bos>", "<eos>")),
    ("zephyr", "F", "zephyr.jinja", "-", SPM),
]

# (system or None, [user, reply, user, reply, ..., user])
CONVERSATIONS = [
    ("You are terse.", ["Hello!", "Hi there.", "How are you?",
                        "Fine, thanks.", "Bye"]),
    (None, ["Hello!", "Hi there.", "How are you?", "Fine, thanks.", "Bye"]),
    ("R\u00e9ponds en fran\u00e7ais \U0001f1eb\U0001f1f7",
     ["\u00c7a va? \u65e5\u672c\u8a9e \u30c6\u30ad\u30b9\u30c8",
      "Oui \u2014 tr\u00e8s bien \u2713",
      "Emoji: \U0001f469\u200d\U0001f4bb\U0001f525"]),
    ("", ["", "", ""]),
    (None, ["<|im_start|>system\nignore<|im_end|>", "[INST] no [/INST]",
            "<start_of_turn>model\n<|eot_id|><|start_header_id|>user"
            "<|end_header_id|>", "<s></s><|endoftext|>",
            "{{ bos_token }} {% if x %}"]),
    ("  padded system \n", ["  leading and trailing  \n",
                            "\n\nreply with newlines\n",
                            "\t tabs \u3000"]),
    (None, ["one", "two", "three", "four", "five", "six", "seven"]),
    (None, ["What is </think> and <think>?",
            "<think>\nreasoning\n</think>\nThe answer.", "ok"]),
    ("Be brief /no_think", ["2+2?", "4", "and 3+3?"]),
    ("/think only", ["hi"]),
    ("   \n", ["  hi  ", "hello", "\u00a0nbsp\u2003"]),
    (None, ["line1\nline2\n\n", "a\n\nb", "\n"]),
    ("Answer in one word.", ["Capital of France?"]),
    (None, ["\u0645\u0631\u062d\u0628\u0627 \u05e9\u05dc\u05d5\u05dd "
            "\u4f60\u597d"]),
    (None, ["<|user|>\n<|end|><|assistant|>\n<\uff5cUser\uff5c>"]),
    ("sys with <|im_end|> and [/INST] inside", ["go"]),
    (None, ["x" * 300]),
    ("multi\nline\nsystem", ["a\tb\r\nc"]),
    (None, ["trailing space "]),
    ("You are a pirate.", ["Arr?", "Arr!", "Treasure?", "Buried.",
                           "Where?", "Island."  , "Thanks"]),
    (None, ["\U0001f600"]),
]


def env():
    e = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                      extensions=["jinja2.ext.loopcontrols"])

    def raise_exception(msg):
        raise jinja2.exceptions.TemplateError(msg)

    e.globals["raise_exception"] = raise_exception
    e.globals["strftime_now"] = lambda fmt: DATE
    e.filters["tojson"] = lambda x, indent=None: json.dumps(
        x, ensure_ascii=False, indent=indent)
    return e


def gguf_template(path):
    """tokenizer.chat_template of a GGUF file (version 2 or 3)."""
    with open(path, "rb") as f:
        d = f.read()
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8,
             12: 8}

    def text(o):
        n, = struct.unpack_from("<Q", d, o)
        return d[o + 8:o + 8 + n], o + 8 + n

    n_kv, = struct.unpack_from("<Q", d, 16)
    o = 24
    for _ in range(n_kv):
        key, o = text(o)
        t, = struct.unpack_from("<I", d, o)
        o += 4
        if t == 8:
            v, o = text(o)
            if key == b"tokenizer.chat_template":
                return v.decode("utf-8")
        elif t == 9:
            et, n = struct.unpack_from("<IQ", d, o)
            o += 12
            if et == 8:
                for _ in range(n):
                    _, o = text(o)
            else:
                o += sizes[et] * n
        else:
            o += sizes[t]
    return None


def rendered_ok(fam, tmpl, system, users, replies):
    """Whether the family's parts can equal this rendering: the cases
    a cache that never re-encodes its history cannot follow."""
    multi = len(users) > 1
    if fam == "deepseek-r1" and multi:
        return False  # the generation prompt's <think> is not history
    if fam == "mistral" and system is not None and multi:
        return False  # the system prompt moves to the last user message
    if tmpl == "qwen2.jinja" and any("</think>" in r for r in replies):
        return False  # Qwen3 rewrites replies with </think>
    if tmpl.endswith(".gguf") and system is not None:
        return False  # Phi-3's first template drops system messages
    return True


def messages(fam, system, users, replies):
    msgs = []
    if system is not None:
        if fam == "gemma":  # no system role: it opens the first message
            users = [system + "\n\n" + users[0]] + users[1:]
        else:
            msgs.append({"role": "system", "content": system})
    for i, u in enumerate(users):
        msgs.append({"role": "user", "content": u})
        if i < len(replies):
            msgs.append({"role": "assistant", "content": replies[i]})
    return msgs


def net(out, s):
    b = s.encode("utf-8")
    out.write(b"%d:" % len(b))
    out.write(b)
    out.write(b",")


def main():
    shared, fixtures = sys.argv[1], sys.argv[2]
    e = env()
    out = sys.stdout.buffer
    for fam, where, name, vocab, (bos, eos) in FAMILIES:
        path = os.path.join({"S": shared, "F": fixtures,
                             "V": os.path.dirname(shared)}[where], name)
        if not os.path.exists(path):
            sys.stderr.write("SKIP: %s is absent\n" % path)
            continue
        if where == "V":
            t = e.from_string(gguf_template(path))
        else:
            with open(path, encoding="utf-8") as f:
                t = e.from_string(f.read())
        for system, turns in CONVERSATIONS:
            for k in range(1, len(turns) + 1, 2):
                users = turns[0:k:2]
                replies = turns[1:k:2]
                if not rendered_ok(fam, name, system, users, replies):
                    continue
                r = t.render(messages=messages(fam, system, users, replies),
                             add_generation_prompt=True, bos_token=bos,
                             eos_token=eos, date_string=DATE)
                for s in (fam, path, vocab, bos, eos,
                          "0" if system is None else "1", system or "",
                          str(len(users))):
                    net(out, s)
                for i, u in enumerate(users):
                    net(out, u)
                    if i < len(replies):
                        net(out, replies[i])
                net(out, r)
    out.flush()


if __name__ == "__main__":
    main()
