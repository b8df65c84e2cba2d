"""The command line, as a new user meets it: help, defaults, and one-line errors."""
import os
import re
import tempfile
import unittest

import microgpt
from tests import run_cli


class TestHelpAndDefaults(unittest.TestCase):

    def test_help_lists_every_flag(self):
        result = run_cli('--help')
        self.assertEqual(result.returncode, 0)
        for flag in ('--input', '--val_fraction', '--n_embd', '--n_head', '--n_layer', '--block_size',
                     '--num_steps', '--batch_size', '--learning_rate', '--warmup_steps', '--weight_decay',
                     '--eval_every',
                     '--eval_docs', '--seed', '--num_samples', '--temperature', '--prompt', '--save',
                     '--save_every', '--load', '--show_attention', '--bench'):
            self.assertIn(flag, result.stdout)

    def test_defaults_are_the_story_functions_and_help_shows_them(self):
        args = microgpt.parse_args([])
        self.assertEqual((args.n_embd, args.n_head, args.n_layer, args.block_size),
                         (None, None, None, None))     # None: the defaults below, or a checkpoint's
        story = microgpt.DEFAULTS
        self.assertEqual((story['n_embd'], story['n_head'], story['n_layer'], story['block_size']),
                         (16, 4, 1, 16))
        for name, value in story.items():
            if name not in microgpt.SHAPE_FLAGS + ('input',):
                self.assertEqual(getattr(args, name), value, name)
        self.assertEqual((args.eval_every, args.eval_docs, args.save_every), (200, 300, 100))
        self.assertEqual(microgpt.parse_args(['--bench']).num_steps, 100)
        help_text = run_cli('--help').stdout
        for name, value in story.items():
            if name not in ('input', 'prompt'):
                entry = re.search(rf'^  --{name} .*?(?=^  -)', help_text, re.S | re.M).group(0)
                self.assertRegex(' '.join(entry.split()), rf'\(default {value}[;)]', name)

    def test_default_run_prints_its_shape_and_the_names_file(self):
        # the defaults, with a short run: the model shape is 16/4/1/16 on names.txt
        result = run_cli('--num_steps', 2, '--num_samples', 3, '--eval_docs', 5)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn('GPTConfig(vocab_size=28, n_embd=16, n_head=4, n_layer=1, block_size=16)', result.stdout)
        self.assertIn('26919 training and 2991 validation documents', result.stdout)
        self.assertIn('3776 parameters', result.stdout)
        samples = result.stdout.split('samples (temperature 1) ---\n')[1].splitlines()
        self.assertEqual(len(samples), 3)

    def test_runs_from_another_working_directory(self):
        with tempfile.TemporaryDirectory() as tmp:
            result = run_cli('--num_steps', 1, '--num_samples', 1, '--eval_docs', 1, cwd=tmp)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn('names.txt', result.stdout)

    def test_num_samples_0_only_trains(self):
        result = run_cli('--num_steps', 1, '--num_samples', 0, '--eval_docs', 1)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertNotIn('samples', result.stdout)

    def test_importing_the_module_trains_nothing(self):
        import subprocess, sys
        out = subprocess.run([sys.executable, '-c', 'import microgpt'], capture_output=True, text=True,
                             cwd=os.path.dirname(microgpt.__file__), timeout=60)
        self.assertEqual((out.returncode, out.stdout, out.stderr), (0, '', ''))


class TestBadInput(unittest.TestCase):
    """Each bad input: exit status 2 and ONE line on stderr saying what is wrong."""

    def assert_one_line_error(self, args, *words):
        result = run_cli('--num_steps', 1, '--num_samples', 1, '--eval_docs', 1, *args)
        self.assertEqual(result.returncode, 2, f'{args}: {result.stderr}')
        self.assertNotIn('Traceback', result.stderr)
        lines = result.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, result.stderr)
        self.assertTrue(lines[0].startswith('error: '), lines[0])
        for word in words:
            self.assertIn(word, lines[0])

    def test_bad_input_files(self):
        with tempfile.TemporaryDirectory() as tmp:
            empty = os.path.join(tmp, 'empty.txt')
            open(empty, 'w').close()
            blank = os.path.join(tmp, 'blank.txt')
            with open(blank, 'w') as f:
                f.write('\n  \n\n')
            binary = os.path.join(tmp, 'latin1.txt')
            with open(binary, 'wb') as f:
                f.write('caf\u00e9\n'.encode('latin-1'))
            cases = [
                (['--input', os.path.join(tmp, 'missing.txt')], 'not found'),
                (['--input', empty], 'empty'),
                (['--input', blank], 'empty'),
                (['--input', binary], 'not UTF-8'),
                (['--input', tmp], 'not a regular file'),
            ]
            for args, word in cases:
                with self.subTest(args=args):
                    self.assert_one_line_error(args, word)

    def test_bad_flags(self):
        cases = [
            (['--prompt', 'Zoe'], "'Z'", 'vocabulary'),
            (['--prompt', 'a' * 17], '--block_size'),
            (['--n_embd', '10'], '--n_embd 10 is not divisible by --n_head 4'),
            (['--n_embd', '12', '--n_head', '8'], 'not divisible'),
            (['--n_embd', '0'], '--n_embd'),
            (['--n_head', '0'], '--n_head'),
            (['--n_layer', '0'], '--n_layer'),
            (['--block_size', '-3'], '--block_size'),
            (['--num_samples', '-1'], '--num_samples'),
            (['--temperature', '0'], '--temperature'),
            (['--temperature', '-1'], '--temperature'),
            (['--temperature', 'nan'], '--temperature'),
            (['--learning_rate', '0'], '--learning_rate'),
            (['--learning_rate', 'inf'], '--learning_rate'),
            (['--learning_rate', 'abc'], '--learning_rate'),
            (['--val_fraction', '1'], '--val_fraction'),
            (['--n_embd', 'sixteen'], '--n_embd'),
            (['--no_such_flag'], 'no_such_flag'),
        ]
        for args, *words in cases:
            with self.subTest(args=args):
                self.assert_one_line_error(args, *words)

    def test_negative_num_steps(self):
        result = run_cli('--num_steps', '-5')
        self.assertEqual(result.returncode, 2)
        self.assertEqual(result.stderr.strip().splitlines(),
                         ['error: --num_steps must be from 0 to 1000000000, not -5'])

    def test_a_diverged_validation_loss_stops_with_a_message_naming_the_step(self):
        # found by the fuzz test: two steps at this rate leave the training loss
        # finite but the validation loss NaN, which once crashed the loss curve
        result = run_cli('--num_steps', 2, '--eval_docs', 2, '--num_samples', 2,
                         '--learning_rate', '2.279140853751069e+102')
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertEqual(result.stderr.strip(), 'error: the validation loss became nan at step 2; '
                                                'try a smaller --learning_rate than 2.27914e+102')

    def test_a_diverging_loss_stops_with_a_message_naming_the_step(self):
        # a huge learning rate: no OverflowError or math domain error, but a clear stop
        result = run_cli('--learning_rate', '1e300', '--num_steps', 50, '--num_samples', 2, '--eval_docs', 2)
        self.assertNotIn('Traceback', result.stderr)
        if result.returncode == 2:
            self.assertRegex(result.stderr.strip(), r'^error: the loss became (nan|inf|-inf) at step \d+; ')
        else:
            self.assertEqual(result.returncode, 0, result.stderr)


if __name__ == '__main__':
    unittest.main()
