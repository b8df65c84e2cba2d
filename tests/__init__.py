"""microgpt's tests: `python -m unittest` from the repository root.

Shared helpers live here; the reference engine is in reference.py."""
import contextlib
import io
import os
import random
import re
import subprocess
import sys
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, 'microgpt.py')
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


# CI runs every test on the oldest and newest CPython, on PyPy and in the venv with every
# optional package; on the CPythons in between it sets MICROGPT_QUICK=1 and skips the
# few tests marked @slow (whole training runs of several seconds through the command
# line), which keeps CI within its 15 minutes. A plain `python -m unittest` runs them.
slow = unittest.skipIf(os.environ.get('MICROGPT_QUICK'), 'slow: MICROGPT_QUICK is set')


def run_cli(*args, timeout=300, cwd=None, script=SCRIPT, **kwargs):
    """Run `python microgpt.py ARGS` in a new process; return the CompletedProcess (text)."""
    return subprocess.run([sys.executable, script] + [str(a) for a in args], capture_output=True,
                          text=True, encoding='utf-8', errors='replace', timeout=timeout,
                          cwd=cwd or ROOT, **kwargs)


def in_process(*args):
    """microgpt.main(ARGS) in this process: (its exit status, its stdout, its stderr)."""
    import microgpt
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = microgpt.main([str(a) for a in args])
    return status, out.getvalue(), err.getvalue()


def samples_of(stdout):
    """The samples a run printed, without the marks of those found in the data."""
    block = stdout.split(' samples (temperature ')[-1].split(' ---\n', 1)[-1]
    samples = []
    for line in block.splitlines():
        if re.match(r'\d+ of \d+ samples are new', line):
            break
        samples.append(re.sub(r'   \(in the (training|validation) data.*\)$', '', line))
    return samples


def small_model(n_layer, n_embd, n_head, block_size, vocab_size=7, seed=0):
    """(config, state_dict) of a small model with random weights (see random_weights)."""
    import microgpt
    config = microgpt.GPTConfig(vocab_size, n_embd, n_head, n_layer, block_size)
    return config, random_weights(microgpt.init_state_dict(config), seed)


def random_weights(state_dict, seed, scale=0.5):
    """Set every parameter to a random non-zero number (far from the tiny init,
    so that every path through the model carries a real gradient)."""
    rng = random.Random(seed)
    for matrix in state_dict.values():
        for row in matrix:
            for p in row:
                p.data = rng.choice((-1, 1)) * rng.uniform(0.1, 1.0) * scale
    return state_dict


def weights_of(state_dict):
    """{name: rows of floats}: the numbers of a state_dict."""
    return {name: [[p.data for p in row] for row in matrix] for name, matrix in state_dict.items()}


# A second dataset, made here rather than shipped: 96 different city names in three
# scripts (Greek, Cyrillic, Latin with accents), to show that any UTF-8 text file with
# one document per line works.  python -c "import tests; tests.write_cities('cities.txt')"
CITIES = ['Αθήνα', 'Θεσσαλονίκη', 'Πάτρα', 'Ηράκλειο', 'Λάρισα', 'Βόλος', 'Ιωάννινα', 'Χανιά',
          'Καβάλα', 'Σέρρες', 'Κομοτηνή', 'Ξάνθη', 'Δράμα', 'Κατερίνη', 'Τρίκαλα', 'Καρδίτσα',
          'Λαμία', 'Χαλκίδα', 'Κόρινθος', 'Άργος', 'Τρίπολη', 'Καλαμάτα', 'Σπάρτη', 'Ρόδος',
          'Κέρκυρα', 'Ζάκυνθος', 'Ρέθυμνο', 'Πρέβεζα', 'Άρτα', 'Αγρίνιο', 'Μεσολόγγι', 'Νάξος',
          'Москва', 'Київ', 'Минск', 'Новосибирск', 'Екатеринбург', 'Казань', 'Львів', 'Одеса',
          'Самара', 'Омск', 'Челябинск', 'Ростов', 'Уфа', 'Пермь', 'Воронеж', 'Волгоград',
          'Харків', 'Дніпро', 'Запоріжжя', 'Вінниця', 'Полтава', 'Чернігів', 'Гомель', 'Брест',
          'Гродно', 'Витебск', 'Могилёв', 'София', 'Пловдив', 'Варна', 'Белград', 'Скопје',
          'São Paulo', 'Zürich', 'Kraków', 'Malmö', 'Besançon', 'Reykjavík', 'Łódź', 'İstanbul',
          'Ñuñoa', 'Göteborg', 'Århus', 'Düsseldorf', 'Gdańsk', 'Brașov', 'Plzeň', 'Košice',
          'Genève', 'Québec', 'Córdoba', 'Málaga', 'Medellín', 'Bogotá', 'Curaçao', 'Tromsø',
          'Jyväskylä', 'Timișoara', 'Iași', 'Poznań', 'Wrocław', 'Győr', 'Pécs', 'Nîmes']


def write_cities(path):
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(CITIES) + '\n')


# A task that needs attention, made here rather than shipped: 5 random letters of a-h,
# a dot, the same 5 letters again (abhda.abhda). The first half cannot be predicted
# (ln 8 = 2.08 a letter); the second can, exactly, by a head that reads 6 positions
# back. python -c "import tests; tests.write_copy_task('copy.txt')"
def copy_docs(n=4000, length=5, letters='abcdefgh'):
    rng = random.Random('copy')
    return [w + '.' + w for w in (''.join(rng.choice(letters) for _ in range(length))
                                  for _ in range(n))]


def write_copy_task(path):
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(copy_docs()) + '\n')


def step_by_hand(model, adam, docs, lr):
    """One training step written out here, apart from Part I's train(): the mean loss of
    docs, one backward(), an Adam step at lr."""
    import microgpt
    loss = sum(microgpt.doc_loss(model.tokenizer.encode_doc(doc), model.state_dict, model.config)
               for doc in docs) / len(docs)
    loss.backward()
    adam.step(lr)
    return loss
