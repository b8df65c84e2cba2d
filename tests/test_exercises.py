"""README's exercises check themselves: each reference solution, applied to a copy of
microgpt.py, still gives the result README states (tests/exercises.py holds both).
The quick ones always run; the ones that train (about 3 minutes in all) run when
MICROGPT_LONG_TESTS is set, as CI sets it for one interpreter."""
import os
import re
import tempfile
import unittest

from tests import ROOT
from tests.exercises import EXERCISES, matches, run, with_solution

LONG = bool(os.environ.get('MICROGPT_LONG_TESTS'))


class TestExercises(unittest.TestCase):

    def check(self, exercise):
        if exercise.seconds > 5 and not LONG:
            self.skipTest('trains for a while: set MICROGPT_LONG_TESTS=1 to run it')
        with tempfile.TemporaryDirectory() as tmp:
            script = with_solution(exercise, tmp) if exercise.edits else None
            got = run(exercise, script) if script else run(exercise)
        self.assertTrue(matches(exercise, got), f'exercise {exercise.number}: got {got!r}, '
                                                f'README says {exercise.expected!r}')

    def test_readme_states_each_exercise_and_its_result(self):
        with open(os.path.join(ROOT, 'README.md'), encoding='utf-8') as f:
            readme = f.read()
        for e in EXERCISES:
            with self.subTest(exercise=e.number):
                section = re.search(rf'^\*\*{e.number}\. {re.escape(e.title)}\*\*(.*?)(?=^\*\*\d+\. |^## )',
                                    readme, re.S | re.M)
                self.assertTrue(section, f'README has no exercise {e.number}. {e.title}')
                expected = (f'{e.expected:g}' if isinstance(e.expected, float) else str(e.expected))
                self.assertIn(expected, section.group(1))


def add_test(exercise):
    def test(self):
        self.check(exercise)
    name = re.sub(r'\W+', '_', exercise.title.lower()).strip('_')
    setattr(TestExercises, f'test_exercise_{exercise.number:02d}_{name}', test)


for _exercise in EXERCISES:
    add_test(_exercise)


if __name__ == '__main__':
    unittest.main()
