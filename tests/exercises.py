"""The exercises of README's "Exercises": change something, predict, run, check.

    python tests/exercises.py                    # list them
    python tests/exercises.py 5                  # run exercise 5 on microgpt.py as it is
    python tests/exercises.py 5 my_microgpt.py   # check your attempt: your edited copy
    python tests/exercises.py 5 --solution       # run it on the reference solution

Each exercise is a change to make (a flag, or an edit of Part I), the command that
runs it, and what to read off its output. The check runs the command on the file you
give, reads the number (or text) off, and compares it with the result README states,
which comes from the reference solution on the default seed (CPython 3.11; other
versions may differ in the last digit, hence each check's tolerance).
tests/test_exercises.py applies every reference solution to a copy of microgpt.py and
checks that it still gives README's result, so the answers stay true as the code
changes. Standard library only.
"""
import os
import re
import subprocess
import sys
import tempfile
from collections import namedtuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, 'microgpt.py')

# number, title, topic; what to change (as README says it); the reference solution, a
# list of (old text, new text) edits of microgpt.py (none: nothing to edit); the
# command: flags for microgpt.py, or Python code that imports it; what to read off the
# output: a regex, and how to reduce what it finds ('first': the first match, a number
# if it is one; 'max': the largest number; 'each': every match, joined by spaces); the
# result README states, how far a run may be from it, and about how long the command
# runs (CPython 3.11, seconds).
Exercise = namedtuple('Exercise', 'number title topic change edits command read reduce '
                                  'expected tolerance seconds')

VAL = r'\| val loss (\d+\.\d+) \(300 docs\)\n(?![\s\S]*\| val loss)'   # the last one
SHORT = ['--num_steps', '300', '--num_samples', '0', '--eval_every', '300']

EXERCISES = [
    Exercise(1, 'Count the parameters', 'parameters',
             'nothing: predict the parameter count for --n_layer 2 --n_embd 32, then run',
             [], ['--n_layer', '2', '--n_embd', '32', '--num_steps', '0', '--num_samples', '0'],
             r'^(\d+) parameters', 'first', 25984, 0, 1),
    Exercise(2, 'The tokens of a name', 'tokenizer',
             'nothing: predict the token ids of "emma", then run the code',
             [], "import microgpt\n"
                 "tokenizer = microgpt.Tokenizer(open('names.txt').read().replace('\\n', ''))\n"
                 "print(tokenizer.encode_doc('emma'))",
             r'^\[([\d, ]+)\]$', 'first', '0, 6, 14, 14, 2, 1', 0, 1),
    Exercise(3, 'A fused node, checked by swapping it out', 'engine',
             'in doc_loss(), replace cross_entropy(LOGITS, TARGET) by its composed form '
             '-softmax(LOGITS)[TARGET].log(): predict the validation loss after 100 steps',
             [('    losses = [cross_entropy(gpt(tokens[pos], pos, cache, state_dict, config),\n'
               '                            tokens[pos + 1])',
               '    losses = [-softmax(gpt(tokens[pos], pos, cache, state_dict, config))'
               '[tokens[pos + 1]].log()')],
             ['--num_steps', '100', '--num_samples', '0', '--eval_every', '100'],
             VAL, 'first', 2.5731, 0.0005, 8),
    Exercise(4, 'Break a derivative', 'engine',
             'in squared_relu(), make the local gradient 3 relu(x) instead of 2 relu(x): '
             'which matrices will the gradient check find wrong?',
             [("    return Value(r * r, (x,), (2.0 * r,), 'relu^2')",
               "    return Value(r * r, (x,), (3.0 * r,), 'relu^2')")],
             ['--num_steps', '0', '--num_samples', '0', '--gradcheck', 'emma'],
             r'^  (\S+?)\[\d+\]\[\d+\] .*<- DIFFERENT$', 'each', 'wte wpe layer0.attn_wq layer0.attn_wk layer0.attn_wv layer0.attn_wo layer0.mlp_fc1', 0, 2),
    Exercise(5, 'Take the residual adds away', 'model',
             'in gpt(), x = x + attention(...) and x = x + mlp(...) become x = attention(...) '
             'and x = mlp(...): predict the validation loss after 300 steps',
             [('        x = [xj + aj for xj, aj in zip(x, a)]', '        x = a'),
              ('        x = [xj + hj for xj, hj in zip(x, h)]', '        x = h')],
             SHORT, VAL, 'first', 2.4566, 0.002, 12),
    Exercise(6, 'Take attention away', 'model',
             'in gpt(), drop the attention line and its add (each position then sees only '
             'itself): predict the validation loss after 300 steps',
             [('        a = attention(rmsnorm(x), keys, values, sd, i, config, weights_seen)\n'
               '        x = [xj + aj for xj, aj in zip(x, a)]\n', '')],
             SHORT, VAL, 'first', 2.4176, 0.002, 10),
    Exercise(7, 'Sixteen heads of one number', 'model',
             'nothing: --n_head 16 (heads of one number each) against the default 4',
             [], ['--n_head', '16'] + SHORT, VAL, 'first', 2.423, 0.002, 16),
    Exercise(8, 'A learning rate of 1, without warmup', 'training',
             'nothing: --learning_rate 1 --warmup_steps 0: how high does the loss go?',
             [], ['--learning_rate', '1', '--warmup_steps', '0', '--num_steps', '300',
                  '--num_samples', '0', '--eval_every', '50'],
             r'^\s*(\d+\.\d+) \|', 'max', 10.44, 0.05, 12),
    Exercise(9, 'The same documents in bigger batches', 'training',
             'nothing: --batch_size 16 --num_steps 188: about the 3000 documents of the '
             'default run, in a quarter of the steps',
             [], ['--batch_size', '16', '--num_steps', '188', '--num_samples', '0',
                  '--eval_every', '1000'],
             VAL, 'first', 2.3946, 0.002, 25),
    Exercise(10, 'Cold sampling', 'sampling',
             'nothing: --temperature 0.05 after 300 steps: what will the 10 names be?',
             [], ['--num_steps', '300', '--eval_docs', '0', '--num_samples', '10',
                  '--temperature', '0.05'],
             r'^([a-z]+)(?:   \(.*\))?$', 'each', 'alili aliri', 0, 10),
    Exercise(11, 'A prompt', 'sampling',
             'nothing: --prompt zz after 300 steps: what comes after zz?',
             [], ['--num_steps', '300', '--eval_docs', '0', '--num_samples', '5', '--prompt', 'zz'],
             r'^(zz\S*)', 'each', 'zzeala zzera zzale zzana zzar', 0, 10),
]


def run(exercise, script=SCRIPT, timeout=600):
    """Run the exercise's command with script; return what it reads off the output."""
    if isinstance(exercise.command, str):
        argv = [sys.executable, '-c', exercise.command]
        env = dict(os.environ, PYTHONPATH=os.path.dirname(script))
    else:
        argv, env = [sys.executable, script] + exercise.command, None
    result = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=timeout,
                            env=env)
    if result.returncode != 0:
        raise RuntimeError(f'{" ".join(argv[1:])} failed:\n{result.stderr}')
    found = re.findall(exercise.read, result.stdout, re.M)
    if not found:
        raise RuntimeError(f'found no {exercise.read!r} in the output:\n{result.stdout[-2000:]}')
    if exercise.reduce == 'max':
        return max(float(x) for x in found)
    if exercise.reduce == 'each':
        return ' '.join(dict.fromkeys(found))
    value = found[0]
    if re.fullmatch(r'\d+', value):
        return int(value)
    return float(value) if re.fullmatch(r'\d+\.\d+', value) else value.strip()


def with_solution(exercise, folder):
    """A copy of microgpt.py with the exercise's reference edits, in folder."""
    with open(SCRIPT, encoding='utf-8') as f:
        source = f.read()
    for old, new in exercise.edits:
        if source.count(old) != 1:
            raise RuntimeError(f'exercise {exercise.number}: {old!r} is not in microgpt.py once')
        source = source.replace(old, new)
    path = os.path.join(folder, 'microgpt.py')
    with open(path, 'w', encoding='utf-8') as f:
        f.write(source)
    os.symlink(os.path.join(ROOT, 'names.txt'), os.path.join(folder, 'names.txt'))
    return path


def matches(exercise, got):
    want = exercise.expected
    if isinstance(want, float):
        return isinstance(got, float) and abs(got - want) <= exercise.tolerance
    return got == want


def main(argv):
    if not argv:
        for e in EXERCISES:
            print(f'{e.number:2}. {e.title} ({e.topic}, about {e.seconds} s): {e.change}')
        return 0
    exercise = EXERCISES[int(argv[0]) - 1]
    with tempfile.TemporaryDirectory() as tmp:
        if argv[1:] == ['--solution']:
            script = with_solution(exercise, tmp)
        else:
            script = os.path.abspath(argv[1]) if argv[1:] else SCRIPT
        got = run(exercise, script)
    ok = matches(exercise, got)
    print(f'exercise {exercise.number}, {exercise.title}: got {got!r}; README: '
          f'{exercise.expected!r}' + (f' (+- {exercise.tolerance})' if exercise.tolerance else '')
          + ('  -> matches' if ok else '  -> differs'))
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
