"""README's exercises check themselves: each reference solution, applied to a copy of
microgpt.py, still gives the expected result (tests/exercises.py holds both), and the
checker runs the very file it is given, keeps the answers to itself until asked, and
says every failure in one line. The quick ones always run; the exercises that train
(a few minutes in all) run when MICROGPT_LONG_TESTS is set, as CI sets it once."""
import os
import re
import subprocess
import sys
import tempfile
import unittest

from tests import ROOT
from tests.exercises import EXERCISES, check, matches, reading, run, with_solution

LONG = bool(os.environ.get('MICROGPT_LONG_TESTS'))
CHECKER = os.path.join(ROOT, 'tests', 'exercises.py')


def checker(*args, cwd=ROOT, timeout=300):
    return subprocess.run([sys.executable, CHECKER] + [str(a) for a in args], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout)


class TestExercises(unittest.TestCase):

    def check_solution(self, exercise):
        if exercise.seconds > 5 and not LONG:
            self.skipTest('trains for a while: set MICROGPT_LONG_TESTS=1 to run it')
        with tempfile.TemporaryDirectory() as tmp:
            got, failed = run(exercise, with_solution(exercise, tmp))
        self.assertIsNone(failed)
        self.assertTrue(matches(exercise, got), f'exercise {exercise.number}: got {got!r}, '
                                                f'expected {exercise.expected!r}')

    def test_readme_asks_each_exercise_and_keeps_its_answer_out_of_sight(self):
        with open(os.path.join(ROOT, 'README.md'), encoding='utf-8') as f:
            readme = f.read()
        for e in EXERCISES:
            with self.subTest(exercise=e.number):
                section = re.search(rf'^\*\*{e.number}\. {re.escape(e.title)}\*\*(.*?)(?=^\*\*\d+\. |^## )',
                                    readme, re.S | re.M)
                self.assertTrue(section, f'README has no exercise {e.number}. {e.title}')
                answer = f'{e.expected:g}' if isinstance(e.expected, float) else str(e.expected)
                self.assertNotIn(answer, section.group(1))
                self.assertIn(f'tests/exercises.py {e.number} ', section.group(1))

    def test_the_handout_is_the_questions_alone(self):
        result = checker('--handout')
        self.assertEqual(result.returncode, 0)
        for e in EXERCISES:
            self.assertIn(f'**{e.number}. {e.title}**', result.stdout)
            self.assertNotIn(e.why[:40], result.stdout)

    def test_a_check_says_matches_or_differs_and_the_answer_only_when_asked(self):
        exercise = EXERCISES[1]                              # the tokens of a name: quick
        with tempfile.TemporaryDirectory() as tmp:
            good = with_solution(exercise, tmp)
            result = checker(2, good)
            self.assertEqual((result.returncode, result.stdout.strip()),
                             (0, 'exercise 2, The tokens of a name: your copy gives 0, 6, 14, 14, '
                                 '2, 1: matches'))
            with open(good, encoding='utf-8') as f:           # a copy whose tokens differ
                source = f.read()
            other = os.path.join(tmp, 'other.py')
            with open(other, 'w', encoding='utf-8') as f:
                f.write(source.replace("enumerate(self.chars, start=2)", "enumerate(self.chars, start=3)"))
            result = checker(2, other)
            self.assertEqual(result.returncode, 1)
            self.assertIn('your copy gives 0, 7, 15, 15, 3, 1: differs', result.stdout)
            self.assertNotIn('0, 6, 14', result.stdout)       # the answer stays unsaid
        answer = checker(2, '--answer')
        self.assertEqual(answer.returncode, 0)
        self.assertIn('0, 6, 14, 14, 2, 1', answer.stdout)

    def test_the_checker_runs_the_very_file_it_is_given_from_any_folder(self):
        # a copy elsewhere, with no names.txt beside it, that prints a mark of its own: the
        # mark shows (for a command that imports microgpt too), and the run finds names.txt
        with open(os.path.join(ROOT, 'microgpt.py'), encoding='utf-8') as f:
            source = f.read()
        edits = {2: ('return [self.ids[ch] for ch in text]', 'return [self.ids[ch] + 100 for ch in text]'),
                 1: ("f'layer{i}.mlp_fc1': (4 * n, n),", "f'layer{i}.mlp_fc1': (3 * n, n),")}
        with tempfile.TemporaryDirectory() as tmp:
            for number, shown in ((2, '0, 106, 114, 114, 102, 1'), (1, '21888')):
                with self.subTest(exercise=number):
                    old, new = edits[number]
                    self.assertEqual(source.count(old), 1)
                    mine = os.path.join(tmp, f'mine{number}.py')
                    with open(mine, 'w', encoding='utf-8') as f:
                        f.write(source.replace(old, new).replace("(n, 4 * n)", "(n, 3 * n)"))
                    result = checker(number, mine, cwd=tmp)
                    self.assertIn(f'your copy gives {shown}', result.stdout, result.stderr)

    def test_each_exercises_tolerance_decides(self):
        exercise = EXERCISES[4]                             # 2.4566 within 0.002
        self.assertTrue(matches(exercise, 2.4566 + 0.0019))
        self.assertFalse(matches(exercise, 2.4566 + 0.0021))
        self.assertFalse(matches(exercise, '2.4566'))
        curve = EXERCISES[8]                                # the highest point, wherever it is
        self.assertEqual(reading(curve, '  3.10 |.\n 10.44 | .\n  2.60 |  .\n'), 10.44)

    def test_every_failure_is_one_line_never_a_traceback(self):
        with tempfile.TemporaryDirectory() as tmp:
            def copy(name, text):            # a learner's copy of microgpt.py, gone wrong
                path = os.path.join(tmp, name)
                with open(path, 'w') as f:
                    f.write(text)
                return path
            broken = copy('broken.py', 'def train(:\n')
            endless = copy('endless.py', 'while True:\n    pass\n')
            failing = copy('failing.py', 'raise SystemExit("my copy broke")\n')
            raising = copy('raising.py', 'raise ValueError("my copy raised")\n')
            nul = copy('nul.py', 'x = 1\0\n')
            unchanged = os.path.join(ROOT, 'microgpt.py')
            cases = [(['0', unchanged], 2, 'give an exercise from 1 to'),
                     (['-1', unchanged], 2, 'give an exercise from 1 to'),
                     ([len(EXERCISES) + 1, unchanged], 2, 'give an exercise from 1 to'),
                     (['abc'], 2, 'give an exercise'), ([], 0, 'Count the parameters'),
                     (['4', os.path.join(tmp, 'missing.py')], 2, 'is not a file'),
                     (['4', broken], 2, 'does not compile'),
                     (['4', unchanged], 1, 'differs: its output has nothing'),   # no DIFFERENT
                     (['4', nul], 2, 'does not compile'),
                     (['2', failing], 1, 'differs: it ended with status 1: my copy broke'),
                     (['2', raising], 1, 'status 1: ValueError: my copy raised'),  # (last line)
                     (['2', endless, '--timeout', '3'], 1, 'ran for more than 3 s')]
            for args, status, words in cases:
                with self.subTest(args=args):
                    result = checker(*args)
                    out = result.stdout + result.stderr
                    self.assertEqual(result.returncode, status, out)
                    self.assertNotIn('Traceback', out)
                    self.assertIn(words, out)
                    if args:
                        self.assertEqual(len(out.strip().splitlines()), 1, out)

    def test_an_in_process_check_reads_the_same(self):
        with tempfile.TemporaryDirectory() as tmp:
            status, line = check(2, with_solution(EXERCISES[1], tmp))
        self.assertEqual(status, 0, line)


def add_test(exercise):
    def test(self):
        self.check_solution(exercise)
    name = re.sub(r'\W+', '_', exercise.title.lower()).strip('_')
    setattr(TestExercises, f'test_exercise_{exercise.number:02d}_{name}', test)


for _exercise in EXERCISES:
    add_test(_exercise)


if __name__ == '__main__':
    unittest.main()
