"""The exercises of README's "Exercises": change something, predict, run, check.

    python tests/exercises.py                    # list them
    python tests/exercises.py --handout          # the questions to print, with no answers
    python tests/exercises.py 5 my_microgpt.py   # check your attempt: your edited copy
    python tests/exercises.py 5 --answer         # the expected result, and why
    python tests/exercises.py 5 --solution       # run the reference solution

Each exercise is a change to make (a flag, or an edit of Part I), the command that runs
it, and what to read off the output. The check copies the file you give into a folder of
its own, as microgpt.py beside names.txt (and copy.txt, the copy task's data, made by
tests/__init__.py), runs the command there, reads the number (or text) off, and says
whether it matches the expected result: the reference solution's on the default seed
(CPython 3.11; other versions may differ in the last digit, hence each tolerance). It
says the expected result only when asked (--answer), so that a class can check its
attempts without reading the answers. tests/test_exercises.py keeps every reference
solution's result true as the code changes. Standard library only.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import namedtuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, 'microgpt.py')
sys.path.insert(0, ROOT)
from tests import write_copy_task   # noqa: E402

# number, title; the reference solution, a list of (old text, new text) edits of
# microgpt.py (none: nothing to edit); the command: flags for microgpt.py, or Python code
# that imports it; what to read off the output: a regex, and how to reduce what it finds
# ('first': the first match, a number if it is one; 'max': the largest number; 'each':
# every different match, joined by spaces); the expected result and how far a run may be
# from it; about how long the command runs (CPython 3.11, seconds); why, for --answer.
Exercise = namedtuple('Exercise', 'number title edits command read reduce expected tolerance '
                                  'seconds why')

VAL = r'^validation loss (\d+\.\d+) \(step [1-9]'           # after training
SHORT = ['--num_steps', '300', '--num_samples', '0', '--eval_every', '300']
NO_ATTENTION = [('        attn = attention(rmsnorm(x), keys, values, sd, i, config)\n'
                 '        x = [xj + aj for xj, aj in zip(x, attn)]\n', '')]
COPY = ['--input', 'copy.txt', '--num_steps', '500', '--num_samples', '0', '--eval_every', '1000']

EXERCISES = [
    Exercise(1, 'Count the parameters', [],
             ['--n_layer', '2', '--n_embd', '32', '--num_steps', '0', '--num_samples', '0',
              '--eval_docs', '0'],
             r'^\d+ training documents, (\d+) parameters', 'first', 25984, 0, 1,
             '25984 = 28*32 + 16*32 + 2*(4 + 8)*32^2: wte and wpe, then per layer 4 attention '
             'matrices of 32 x 32 and 2 MLP matrices of 128 x 32. (The default model: 28*16 + '
             '16*16 + 12*16^2 = 3776.) The MLP holds two thirds of each layer, and the layers '
             'grow with the square of n_embd.'),
    Exercise(2, 'The tokens of a name', [],
             "import microgpt\n"
             "tokenizer = microgpt.Tokenizer(open('names.txt').read().replace('\\n', ''))\n"
             "print(tokenizer.encode_doc('emma'))",
             r'^\[([\d, ]+)\]$', 'first', '0, 6, 14, 14, 2, 1', 0, 1,
             '<BOS>, e, m, m, a, <EOS>: the characters are sorted and numbered from 2 (a is 2, e '
             'is 6, m is 14). The model never sees letters, only these.'),
    Exercise(3, 'A fused node, checked by swapping it out',
             [('        losses.append(cross_entropy(logits, tokens[pos + 1]))',
               '        losses.append(-softmax(logits)[tokens[pos + 1]].log())')],
             ['--num_steps', '100', '--num_samples', '0', '--eval_every', '100'],
             VAL, 'first', 2.5731, 0.0005, 12,
             'the same as the unchanged file to the last digit: the composed graph computes '
             'the same loss, and backward() finds the same gradient (softmax minus the one-hot '
             "target) that the fused node's docstring derives by hand. The steps are slower: a "
             "position's loss is now a node per token for exp, more for the sum, and a log."),
    Exercise(4, 'Break a derivative',
             [("    return Value(r * r, (x,), (2.0 * r,), 'relu^2')",
               "    return Value(r * r, (x,), (3.0 * r,), 'relu^2')")],
             ['--num_steps', '0', '--num_samples', '0', '--gradcheck', 'emma'],
             r'^  (\S+?)\[\d+\]\[\d+\] .*<- DIFFERENT$', 'each',
             'wte wpe layer0.attn_wq layer0.attn_wk layer0.attn_wv layer0.attn_wo layer0.mlp_fc1',
             0, 2,
             'every matrix whose gradient passes back through the slope of squared ReLU, with '
             "gaps around 0.1. mlp_fc2 still agrees: it reads squared ReLU's value, never its "
             'slope. A wrong derivative shows in the matrices upstream of it, and only there.'),
    Exercise(5, 'Take the residual adds away',
             [('        x = [xj + aj for xj, aj in zip(x, attn)]', '        x = attn'),
              ('        x = [xj + mj for xj, mj in zip(x, mlp)]', '        x = mlp')],
             SHORT, VAL, 'first', 2.4566, 0.002, 12,
             'worse by 0.035, less than most guess for losing "the" trick of deep networks: '
             'with one layer, there is little to carry past it and few layers for a gradient '
             'to fade through. At 4 layers (README, the experiments) the model learns nothing.'),
    Exercise(6, 'Take attention away', NO_ATTENTION, SHORT, VAL, 'first', 2.4176, 0.002, 10,
             'no worse, a little better: at 300 steps of 4 names the model has learned little '
             'that needs the earlier letters. Its current letter and its place carry most of '
             'what it knows (a table of counts of "letter, position -> next letter" does '
             'better still, 2.30: see the experiments). Exercise 7 shows where attention matters.'),
    Exercise(7, 'Attention where it matters: copying', NO_ATTENTION, COPY, VAL, 'first', 1.7361,
             0.002, 15,
             'the loss of not copying at all: the 5 letters after the dot cost ln 8 = 2.08 each, '
             'as the 5 before it, (10 x 2.08) / 12 positions = 1.73. With attention (0.89) the '
             'model copies nearly perfectly (0.87 is perfect: the first 5 letters cannot be '
             'predicted). Only attention lets a position read an earlier one: names needed '
             'little of it; copying needs nothing else.'),
    Exercise(8, 'Sixteen heads of one number', [], ['--n_head', '16'] + SHORT, VAL, 'first',
             2.423, 0.002, 16,
             'the same, within the noise of the seeds: on names the number of heads does not '
             'matter at this size. The experiments show tasks where it does, both ways.'),
    Exercise(9, 'A learning rate of 1, without warmup', [],
             ['--learning_rate', '1', '--warmup_steps', '0', '--num_steps', '300',
              '--num_samples', '0', '--eval_every', '50'],
             r'^\s*(\d+\.\d+) \|', 'max', 10.44, 0.05, 12,
             'three times a uniform guess (3.33): after its first full steps the model is '
             'confidently wrong (Adam moves every weight by about the learning rate, 1, at once, '
             'on weights of about 0.15). It recovers: validation 7.33 at step 50, 2.71 at step '
             '300. With --warmup_steps 100 the same peak keeps the loss below 4.'),
    Exercise(10, 'The same documents in bigger batches', [],
             ['--batch_size', '16', '--num_steps', '188', '--num_samples', '0', '--eval_every',
              '1000'], VAL, 'first', 2.3946, 0.002, 25,
             'worse by 0.04 than the default run (2.3543), for about the same time: a bigger '
             'batch gives a less noisy gradient, but 4 times fewer steps; here steps win.'),
    Exercise(11, 'Cold sampling', [],
             ['--num_steps', '300', '--eval_docs', '0', '--num_samples', '10', '--temperature',
              '0.05'], r'^([a-z]+)(?:   \(.*\))?$', 'each', 'alili aliri', 0, 10,
             'alili nine times, aliri once: at a temperature near 0 every draw takes the '
             'likeliest next letter, so every sample is the same name, unless two letters are '
             'almost tied.'),
    Exercise(12, 'A prompt', [],
             ['--num_steps', '300', '--eval_docs', '0', '--num_samples', '5', '--prompt', 'zz'],
             r'^(zz\S*)', 'each', 'zzeala zzera zzale zzana zzar', 0, 10,
             'after its prompt the model goes on as after any start, with the endings it likes '
             'best (-ala, -era, -ana): it reads the prompt through attention and the position, '
             'but no name started with zz to teach it more.'),
    Exercise(13, 'The odds of the next letter', [],
             ['--num_steps', '300', '--eval_docs', '0', '--num_samples', '0', '--show_next', 'em'],
             r'^  ([a-z<>A-Z]+) +(\d\.\d{3}) #* +(\d\.\d{3})', 'first', 'i 0.215 0.341', 0, 12,
             'after em, i is the likeliest letter, 0.215 at temperature 1, nearly tied with a '
             '(0.209) and e (0.175). At temperature 0.5 the logits are doubled before softmax: '
             'the three likeliest take 0.89 of the probability (0.34, 0.33, 0.23), the rare '
             'letters almost nothing. That is what makes cold samples safe, and alike.'),
]


def reading(exercise, output):
    """What the exercise reads off a run's output, or None if it finds nothing."""
    found = re.findall(exercise.read, output, re.M)
    if not found:
        return None
    if exercise.reduce == 'max':
        return max(float(x) for x in found)
    if exercise.reduce == 'each':
        return ' '.join(dict.fromkeys(found))
    value = ' '.join(found[0]) if isinstance(found[0], tuple) else found[0]
    if re.fullmatch(r'\d+', value):
        return int(value)
    return float(value) if re.fullmatch(r'\d+\.\d+', value) else value.strip()


def run(exercise, script=SCRIPT, timeout=None):
    """Run the exercise's command on script (copied as microgpt.py into a folder of its
    own, beside names.txt and copy.txt): (what it reads off, or None; a message if the
    run failed). Raises TimeoutError past the time limit."""
    timeout = timeout or max(120, 10 * exercise.seconds)
    with tempfile.TemporaryDirectory() as folder:
        shutil.copy(script, os.path.join(folder, 'microgpt.py'))
        shutil.copy(os.path.join(ROOT, 'names.txt'), folder)
        write_copy_task(os.path.join(folder, 'copy.txt'))
        command = (['-c', exercise.command] if isinstance(exercise.command, str)
                   else ['microgpt.py'] + exercise.command)
        env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
        try:
            result = subprocess.run([sys.executable] + command, capture_output=True, text=True,
                                    cwd=folder, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f'it ran for more than {timeout:.0f} s, and was stopped')
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ['(nothing on stderr)'])[-1]
        return None, f'it ended with status {result.returncode}: {last}'
    return reading(exercise, result.stdout), None


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
    return path


def matches(exercise, got):
    want = exercise.expected
    if isinstance(want, float):
        return isinstance(got, float) and abs(got - want) <= exercise.tolerance
    return got == want


def handout():
    """README's exercises, the questions alone: what a class is given."""
    with open(os.path.join(ROOT, 'README.md'), encoding='utf-8') as f:
        readme = f.read()
    return re.search(r'^## Exercises\n.*?(?=^## )', readme, re.S | re.M).group(0).strip()


def check(number, what, timeout=None):
    """Run exercise `number` on what: a file, or --solution; (exit status, one line)."""
    exercise = EXERCISES[number - 1]
    name = f'exercise {number}, {exercise.title}'
    if what == '--answer':
        expected = exercise.expected
        return 0, (f'{name}: {expected}' + (f' (within {exercise.tolerance})'
                                            if exercise.tolerance else '') + f': {exercise.why}')
    with tempfile.TemporaryDirectory() as tmp:
        script = with_solution(exercise, tmp) if what == '--solution' else what
        if not os.path.isfile(script):
            return 2, f'error: {script!r} is not a file: give your copy of microgpt.py'
        try:
            with open(script, encoding='utf-8') as f:
                compile(f.read(), script, 'exec')
        except (SyntaxError, ValueError, UnicodeDecodeError) as e:
            return 2, f'error: {script!r} does not compile: {e}'
        try:
            got, failed = run(exercise, script, timeout)
        except TimeoutError as e:
            return 1, f'{name}: differs: {e}'
    if failed:
        return 1, f'{name}: differs: {failed}'
    if got is None:
        return 1, f'{name}: differs: its output has nothing the exercise reads'
    verdict = 'matches' if matches(exercise, got) else 'differs'
    return (0 if verdict == 'matches' else 1), (
        f'{name}: your copy gives {got}: {verdict}' + (
            '' if verdict == 'matches' else f' (the expected result: {sys.argv[0]} {number} '
                                            f'--answer)'))


def main(argv):
    if not argv:
        for e in EXERCISES:
            print(f'{e.number:2}. {e.title} (about {e.seconds} s)')
        return 0
    if argv == ['--handout']:
        print(handout())
        return 0
    timeout = None
    if len(argv) == 4 and argv[2] == '--timeout' and argv[3].isdigit():
        timeout, argv = int(argv[3]), argv[:2]
    if len(argv) != 2 or not argv[0].isdigit() or not 1 <= int(argv[0]) <= len(EXERCISES):
        print(f'error: give an exercise from 1 to {len(EXERCISES)} and your copy of '
              f'microgpt.py (or --answer, or --solution): {" ".join(argv)!r}', file=sys.stderr)
        return 2
    status, line = check(int(argv[0]), argv[1], timeout)
    print(line, file=sys.stderr if status == 2 else sys.stdout)
    return status


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
