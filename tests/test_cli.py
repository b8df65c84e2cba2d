"""The command line, as a new user meets it: help, defaults, and one-line errors."""
import contextlib
import io
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import unittest
from unittest import mock

import microgpt
from tests import ROOT, SCRIPT, run_cli, samples_of, slow


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
        self.assertEqual((args.eval_every, args.eval_docs, args.save_every), (250, 300, 100))
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
        self.assertEqual(len(samples_of(result.stdout)), 3)

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
            (['--num_steps', str(10 ** 400)], '--num_steps must be from 0 to 1000000000'),
            (['--warmup_steps', str(10 ** 400)], '--warmup_steps must be from 0 to 1000000000'),
            (['--batch_size', '0'], '--batch_size'),
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
        # found by the fuzz test: the training loss finite, the validation loss nan, which
        # once crashed the loss curve. Whatever makes the validation loss nan, the run
        # stops with one line naming the step, and draws no curve.
        args = microgpt.parse_args(['--num_steps', '5', '--eval_every', '3', '--eval_docs', '2'])
        steps, real_step, real_doc_loss = [], microgpt.train_step, microgpt.doc_loss

        def counted_step(*a):
            loss = real_step(*a)
            steps.append(1)
            return loss

        def nan_after_step_3(tokens, state_dict, config):   # steps 1-3 train on finite losses
            loss = real_doc_loss(tokens, state_dict, config)
            return loss * float('nan') if len(steps) >= 3 else loss
        with mock.patch.object(microgpt, 'doc_loss', nan_after_step_3), \
                mock.patch.object(microgpt, 'train_step', counted_step), \
                contextlib.redirect_stdout(io.StringIO()) as out:
            with self.assertRaisesRegex(microgpt.InputError, r'^the validation loss became nan at '
                                        r'step 3; try a smaller --learning_rate than 0.01$'):
                microgpt.run(args)
        self.assertEqual(len(steps), 3)
        self.assertNotIn('loss curve', out.getvalue())

    def test_a_diverging_loss_stops_with_a_message_naming_the_step(self):
        # a huge learning rate: no OverflowError or math domain error, but a clear stop
        result = run_cli('--learning_rate', '1e300', '--num_steps', 50, '--num_samples', 2, '--eval_docs', 2)
        self.assertNotIn('Traceback', result.stderr)
        if result.returncode == 2:
            self.assertRegex(result.stderr.strip(), r'^error: the loss became (nan|inf|-inf) at step \d+; ')
        else:
            self.assertEqual(result.returncode, 0, result.stderr)



class TestNoTraceback(unittest.TestCase):
    """Ordinary ways of running a command-line tool end without a traceback."""

    def test_a_pipe_into_head_ends_quietly(self):
        proc = subprocess.Popen([sys.executable, SCRIPT, '--num_steps', '300', '--eval_docs', '5'],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
        first = [proc.stdout.readline() for _ in range(3)]           # as `| head -3` does
        proc.stdout.close()
        err = proc.communicate(timeout=120)[1].decode()
        self.assertEqual(len(first), 3)
        self.assertEqual(err, '')
        self.assertNotEqual(proc.returncode, 0)

    @unittest.skipUnless(os.path.exists('/dev/full'), 'needs /dev/full')
    def test_a_full_disk_on_stdout_is_one_line(self):
        with open('/dev/full', 'w') as full:
            result = subprocess.run([sys.executable, SCRIPT, '--num_steps', '3', '--eval_docs', '2'],
                                    stdout=full, stderr=subprocess.PIPE, text=True, timeout=120, cwd=ROOT)
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stderr.splitlines(), ['error: cannot write the output: No space left on device'])

    @unittest.skipUnless(os.name == 'posix', 'needs POSIX file descriptors')
    def test_a_closed_stdout_is_no_error(self):
        result = subprocess.run([sys.executable, SCRIPT, '--num_steps', '3', '--eval_docs', '2'],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                timeout=120, cwd=ROOT, preexec_fn=lambda: os.close(1))
        self.assertEqual((result.returncode, result.stderr), (0, ''))

    def test_once_the_script_is_done_ctrl_c_is_ignored(self):
        # a Ctrl-C while Python shuts down would print a traceback from its threading module
        code = ('import runpy, signal, sys; sys.argv = [sys.argv[1], "--num_steps", "0", '
                '"--num_samples", "1"]; runpy.run_path(sys.argv[0], run_name="__main__")\n'
                'print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)')
        env = dict(os.environ, PYPY_GC_NURSERY='4MB')   # PyPy would restart, leaving runpy
        result = subprocess.run([sys.executable, '-c', code, SCRIPT], capture_output=True, text=True,
                                timeout=120, cwd=ROOT, env=env)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout.splitlines()[-1], 'True')


class TestMessages(unittest.TestCase):
    """An error is one line, whatever it quotes, and its exit status holds even when
    it cannot be printed."""

    def test_a_file_name_with_a_line_break_or_an_escape_is_shown_escaped(self):
        result = run_cli('--input', 'no\nsuch\x1b[31mfile')
        self.assertEqual(result.returncode, 2)
        self.assertEqual(result.stderr, "error: input file 'no\\nsuch\\x1b[31mfile' not found\n")

    def test_an_error_that_cannot_be_printed_still_exits_with_status_2(self):
        if not os.path.exists('/dev/full'):
            self.skipTest('needs /dev/full')
        with open('/dev/full', 'w') as full:
            result = subprocess.run([sys.executable, SCRIPT, '--n_embd', '10'], stderr=full,
                                    stdout=subprocess.PIPE, timeout=60, cwd=ROOT)
        self.assertEqual(result.returncode, 2)

    def test_a_negative_seed_is_refused(self):
        # random.Random(-5) is random.Random(5): two seeds that look different, one run
        result = run_cli('--seed', -5)
        self.assertEqual((result.returncode, result.stderr), (2, 'error: --seed must be 0 or more, not -5\n'))


class TestMemoryAndHangs(unittest.TestCase):
    """Input that would hang, or take all the memory, is refused at once with one line."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def sparse_file(self, name, megabytes):
        path = os.path.join(self.tmp.name, name)
        with open(path, 'wb') as f:
            f.truncate(megabytes * 2 ** 20)                 # takes no disk space
        return path

    def assert_refused(self, args, *words, timeout=60):
        result = run_cli('--num_steps', 2, '--num_samples', 1, '--eval_docs', 1, *args, timeout=timeout)
        self.assertEqual(result.returncode, 2, result.stdout[-500:] + result.stderr)
        lines = result.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, result.stderr)
        for word in words:
            self.assertIn(word, lines[0])
        self.assertNotIn('| loss', result.stdout)

    def test_files_that_never_end_or_block(self):
        cases = [(['--input', '/dev/zero'], 'not a regular file'),
                 (['--load', '/dev/zero'], 'not a regular file')]
        if hasattr(os, 'mkfifo'):
            fifo = os.path.join(self.tmp.name, 'fifo')
            os.mkfifo(fifo)
            cases += [(['--input', fifo], 'not a regular file'), (['--load', fifo], 'not a regular file')]
        for args, word in cases:
            with self.subTest(args=args):
                self.assert_refused(args, word)

    def test_files_too_large_to_read(self):
        self.assert_refused(['--load', self.sparse_file('big.json', 500)], 'at most 64 MB')
        self.assert_refused(['--input', self.sparse_file('big.txt', 100)], 'at most 16 MB')

    def test_models_too_large_for_the_memory(self):
        for args in (['--n_embd', 100000], ['--n_layer', 100000], ['--block_size', 10 ** 7],
                     ['--batch_size', 10 ** 8]):
            with self.subTest(args=args):
                self.assert_refused(args, 'GB of memory')

    @slow
    def test_a_vocabulary_of_every_code_point(self):
        path = os.path.join(self.tmp.name, 'every.txt')
        everything = ''.join(chr(c) for c in range(0x110000) if not 0xd800 <= c < 0xe000)
        with open(path, 'w', encoding='utf-8') as f:
            f.write(''.join(ch for ch in everything if not (ch.isspace() or ch == '\x85')) + '\n')
        self.assert_refused(['--input', path], 'GB of memory', timeout=120)


    def test_a_file_that_says_it_is_empty_is_read_to_its_real_end(self):
        # files in /proc say they have 0 bytes: read them up to the limit, no further
        if not os.path.exists('/proc/self/status'):
            self.skipTest('needs /proc')
        self.assertEqual(os.stat('/proc/self/status').st_size, 0)
        self.assertIn(b'Name:', microgpt.read_file('/proc/self/status', 'input file', 10 ** 6))
        with self.assertRaisesRegex(microgpt.InputError, 'more than 0 MB'):
            microgpt.read_file('/proc/self/status', 'input file', 10)

    def test_the_graph_estimate_behind_the_memory_check_is_within_10_percent(self):
        # graph_size_estimate() derives from the shapes what doc_loss() builds: check it
        # against real graphs, short and long documents, narrow and wide, deep and not
        for shape in ((28, 16, 4, 1, 16), (30, 8, 2, 3, 7), (5, 12, 3, 2, 20), (101, 16, 16, 1, 4),
                      (28, 64, 4, 1, 16), (28, 16, 4, 4, 16)):
            config = microgpt.GPTConfig(*shape)
            tokenizer = microgpt.Tokenizer(''.join(chr(97 + i) for i in range(config.vocab_size - 2)))
            sd = microgpt.init_state_dict(config)
            for length in (3, config.block_size):
                with self.subTest(shape=shape, length=length):
                    doc = ''.join(tokenizer.chars[i % len(tokenizer.chars)] for i in range(length))
                    loss = microgpt.doc_loss(tokenizer.encode_doc(doc), sd, config)
                    interior = microgpt.topological_order(loss)
                    real = (len(interior), sum(len(node.children) for node in interior))
                    estimate = microgpt.graph_size_estimate(config, min(length + 1, config.block_size))
                    for got, want in zip(estimate, real):
                        self.assertLess(abs(got / want - 1), 0.1, (estimate, real))

    @slow
    def test_the_memory_estimate_is_close_to_a_real_steps_peak(self):
        # tracemalloc's peak over one training step (the model built first): the estimate
        # must be above it, and not by much, or runs that fit would be refused
        import gc
        if sys.implementation.name != 'cpython' or sys.version_info < (3, 9):
            self.skipTest("tracemalloc measures CPython's memory; reset_peak() needs 3.9")
        import tracemalloc
        for shape, batch_size in (((28, 16, 4, 1, 16), 4), ((28, 48, 4, 2, 16), 1)):
            config = microgpt.GPTConfig(*shape)
            tokenizer = microgpt.Tokenizer('abcdefghijklmnopqrstuvwxyz')
            docs = ['abcdefghijklmno'] * batch_size
            gc.disable()
            tracemalloc.start()
            try:
                sd = microgpt.init_state_dict(config)
                model = microgpt.Model(config, tokenizer, sd, microgpt.Adam(microgpt.parameters(sd)))
                microgpt.train_step(model, docs, 0.01)          # Adam's m and v filled in
                tracemalloc.reset_peak()
                microgpt.train_step(model, docs, 0.01)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
                gc.enable()
            with self.subTest(shape=shape):
                ratio = microgpt.estimate_memory(config, batch_size, docs) / peak
                self.assertTrue(1.0 < ratio < 1.6, ratio)

    def test_the_parameter_count_behind_the_estimates_is_exact(self):
        for shape in ((28, 16, 4, 1, 16), (30, 8, 2, 3, 7), (101, 12, 3, 2, 20)):
            config = microgpt.GPTConfig(*shape)
            self.assertEqual(microgpt.parameter_count(config),
                             len(microgpt.parameters(microgpt.init_state_dict(config))), shape)

    @unittest.skipUnless(sys.platform.startswith('linux'), 'needs Linux: RLIMIT_AS and /proc')
    def test_the_memory_limit_of_this_process_counts(self):
        # ulimit -v 2 GB: a model that needs about 3 GB is refused, though the machine has more
        import resource

        def limit():
            resource.setrlimit(resource.RLIMIT_AS, (2 * 2 ** 30, resource.RLIM_INFINITY))
        result = run_cli('--n_embd', 128, '--n_layer', 4, '--batch_size', 8, '--num_steps', 1,
                         preexec_fn=limit)
        self.assertEqual(result.returncode, 2, result.stderr[-500:])
        self.assertIn('GB of memory', result.stderr)


class WithFiles:
    """A temporary folder for a test's files, and write() to make one."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def write(self, name, data):
        path = os.path.join(self.tmp.name, name)
        with open(path, 'wb') as f:
            f.write(data)
        return path


class TestRightResults(WithFiles, unittest.TestCase):

    def test_a_byte_order_mark_is_not_part_of_the_first_document(self):
        path = self.write('bom.txt', '\ufeffanna\nbob\n'.encode('utf-8'))
        self.assertEqual(microgpt.read_input(path), ['anna', 'bob'])
        result = run_cli('--input', path, '--num_steps', 1, '--num_samples', 0, '--val_fraction', 0)
        self.assertIn('vocab_size=6', result.stdout)           # a, n, b, o and the two specials
        # two files joined: the second one's mark in the middle is not a letter either
        joined = self.write('joined.txt', '\ufeffanna\n\ufeffbob\n'.encode('utf-8'))
        self.assertEqual(microgpt.read_input(joined), ['anna', 'bob'])
        result = run_cli('--input', joined, '--num_steps', 1, '--num_samples', 0, '--val_fraction', 0)
        self.assertIn('vocab_size=6', result.stdout)

    def test_the_offset_of_a_bad_byte_is_its_place_in_the_file(self):
        with open(os.path.join(ROOT, 'names.txt'), 'rb') as f:
            names = f.read()
        path = self.write('bad.txt', names + b'caf\xe9\n')
        result = run_cli('--input', path)
        self.assertEqual(result.returncode, 2)
        lines = names.count(b'\n') + 1
        self.assertIn(f'byte 0xe9 at offset {len(names) + 3} (line {lines})', result.stderr)

    def test_empty_paths_are_refused(self):
        for flag in ('--input', '--save', '--load'):
            with self.subTest(flag=flag):
                result = run_cli(flag, '', '--num_steps', 1)
                self.assertEqual(result.returncode, 2)
                self.assertEqual(result.stderr, f'error: {flag} needs a file name, not an empty one\n')

    def test_bench_does_not_pretend_to_save(self):
        result = run_cli('--bench', '--save', os.path.join(self.tmp.name, 'x.json'))
        self.assertEqual(result.returncode, 2)
        self.assertIn('saves nothing', result.stderr)

    def test_a_huge_learning_rate_is_shown_as_it_is(self):
        result = run_cli('--learning_rate', '1e308', '--num_steps', 2, '--eval_docs', 2,
                         '--warmup_steps', 0)
        self.assertIn('| lr 1.0e+308 |', result.stdout)
        self.assertNotIn('inf', result.stdout)

    def test_control_characters_in_the_data_are_shown_escaped(self):
        path = self.write('controls.txt', b'\x1b[31mred\nbell\x07\nplain\n' * 20)
        result = run_cli('--input', path, '--num_steps', 5, '--eval_docs', 2, '--num_samples', 3,
                         '--prompt', '\x1b[3')
        self.assertEqual(result.returncode, 0, result.stderr)
        samples = samples_of(result.stdout)
        self.assertEqual(len(samples), 3)
        self.assertTrue(all(s.startswith('\\x1b[3') for s in samples), samples)
        self.assertNotIn('\x1b', result.stdout)
        self.assertNotIn('\x07', result.stdout)


class TestSecondRound(WithFiles, unittest.TestCase):
    """What a second adversarial run found: wrong results, tracebacks, estimates that
    refused what fits or let through what does not, unclear messages."""

    def in_process(self, *argv):
        """run() of the command line, here: (its exit status, what it printed)."""
        with contextlib.redirect_stdout(io.StringIO()) as out:
            status = microgpt.run(microgpt.parse_args([str(a) for a in argv]))
        return status, out.getvalue()

    def test_an_interrupted_run_says_which_step_its_validation_loss_is_from(self):
        history = {'train': [3.9, 3.5, 3.1, 3.0, 2.9], 'val': [(0, 3.4976)], 'ms': [1.0] * 5}
        self.assertIn('val loss 3.4976 (at step 0),', microgpt.summary(history))
        history['val'].append((5, 2.9))
        self.assertIn('val loss 2.9000, ', microgpt.summary(history))

    def test_a_short_run_whose_loss_falls_has_not_diverged(self):
        # (a 3-step run starting above ln(vocab) + 0.5 was said to have diverged)
        self.assertIsNone(microgpt.divergence_warning({'train': [4.3, 4.2, 4.0]}, 28))
        self.assertIsNone(microgpt.divergence_warning({'train': [3.3] * 20}, 28))
        self.assertRegex(microgpt.divergence_warning({'train': [3.3] * 10 + [9.0] * 10}, 28),
                         r'^training diverged: the loss ended at 9, worse than at its start')
        names = self.write('small.txt', '\n'.join(['anna', 'bob', 'carl', 'dora'] * 50).encode())
        result = run_cli('--input', names, '--val_fraction', '0.99999', '--num_steps', 3,
                         '--eval_docs', 2, '--num_samples', 1)
        self.assertEqual((result.returncode, result.stderr), (0, ''))

    def test_the_input_is_read_once(self):
        # (a file edited during the start-up gave KeyError: each read saw another text)
        reads, real = [], microgpt.read_file

        def counted(path, what, max_bytes):
            reads.append(what)
            return real(path, what, max_bytes)
        with mock.patch.object(microgpt, 'read_file', counted):
            self.assertEqual(self.in_process('--num_steps', 1, '--eval_docs', 2, '--num_samples', 1)[0], 0)
        self.assertEqual(reads, ['input file'])

    def test_a_read_that_would_wait_is_one_line(self):
        # (/proc/kmsg, opened without blocking, read nothing: None, then a TypeError)
        class Waiting(io.RawIOBase):
            def readinto(self, b):
                return None
        with mock.patch.object(microgpt.os, 'fdopen', lambda fd, mode: Waiting()):
            with self.assertRaisesRegex(microgpt.InputError, 'without waiting; copy it to a file'):
                microgpt.read_file(os.path.join(ROOT, 'names.txt'), 'input file', 10 ** 6)

    @slow
    def test_a_warning_that_cannot_be_printed_loses_nothing_else(self):
        # a diverging but finite run, stderr a full disk: the samples are still printed
        with open(os.devnull if not os.path.exists('/dev/full') else '/dev/full', 'w') as full:
            result = subprocess.run([sys.executable, SCRIPT, '--learning_rate', '30', '--num_steps',
                                     '60', '--eval_docs', '5', '--num_samples', '3'],
                                    stdout=subprocess.PIPE, stderr=full, text=True, cwd=ROOT,
                                    timeout=300)
        self.assertEqual(result.returncode, 0)
        self.assertIn('3 samples are new', result.stdout.replace('0 of 3', '3').replace(
            '1 of 3', '3').replace('2 of 3', '3'))

    def test_a_long_line_is_read_as_the_model_reads_it(self):
        # one 2 MB line: a document is read for at most block_size characters, so it is
        # cropped once, not encoded whole at every step, and the memory estimate uses
        # what the model reads
        big = self.write('big.txt', b'x' * (2 * 2 ** 20) + b'\nanna\nbob\n')
        docs = microgpt.read_input(big)
        config = microgpt.GPTConfig(5, 16, 4, 1, 16)
        cropped = [d[:16] for d in docs]
        self.assertLess(microgpt.estimate_memory(config, 16, docs),
                        microgpt.estimate_memory(config, 16, cropped) + 4 * len(docs[0]))
        args = microgpt.parse_args(['--input', big, '--num_steps', '0', '--eval_docs', '1'])
        model = microgpt.Model(config, microgpt.Tokenizer('xanbo'), {}, None)
        watch = microgpt.Workbench(args, model, docs, docs[:1])
        self.assertEqual(max(map(len, watch.train_docs + watch.eval_docs)), 16)
        result = run_cli('--input', big, '--num_steps', 2, '--batch_size', 16, '--eval_docs', 1,
                         '--num_samples', 1, '--val_fraction', 0, timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_the_memory_estimate_does_not_refuse_what_fits(self):
        # (--block_size 1000 was said to need 16 GB; names are at most 15 letters)
        status, out = self.in_process('--block_size', 1000, '--num_steps', 1, '--eval_docs', 1,
                                      '--num_samples', 0)
        self.assertEqual(status, 0)
        docs = microgpt.read_input(os.path.join(ROOT, 'names.txt'))
        config = microgpt.GPTConfig(28, 16, 4, 1, 1000)
        self.assertLess(microgpt.estimate_memory(config, 4, docs), 100 * 2 ** 20)

    def test_sizes_are_said_in_units_that_show_them(self):
        self.assertEqual([microgpt.in_units(n) for n in (200 * 2 ** 20, 3 * 2 ** 30 // 2, 5000, 20)],
                         ['200 MB', '1.5 GB', '4.9 kB', '20 bytes'])

    @unittest.skipUnless(os.name == 'posix', 'needs a C locale')
    def test_a_prompt_in_a_c_locale_or_typed_decomposed_is_understood(self):
        cities = self.write('cities.txt', '\n'.join(['Zürich', 'Zug', 'Λάρισα'] * 30).encode())
        env = dict(os.environ, LC_ALL='C', LANG='C', PYTHONUTF8='0', PYTHONCOERCECLOCALE='0')
        for prompt in ('Zür', 'Zu\u0308r', 'Λά'):                     # the second: u + a diaeresis
            with self.subTest(prompt=prompt):
                result = subprocess.run([sys.executable, SCRIPT, '--input', cities, '--num_steps', '1',
                                         '--eval_docs', '1', '--num_samples', '2', '--prompt', prompt],
                                        capture_output=True, cwd=ROOT, env=env, timeout=120)
                self.assertEqual(result.returncode, 0, result.stderr.decode('utf-8', 'replace'))
        result = subprocess.run([sys.executable, SCRIPT, '--num_steps', '1', '--prompt', 'Λά'],
                                capture_output=True, cwd=ROOT, env=env, timeout=120)
        self.assertEqual(result.returncode, 2)
        self.assertIn(b"character '\\u039b' is not in the vocabulary", result.stderr.replace(
            "'Λ'".encode(), b"'\\u039b'"))
        self.assertNotIn(b'udcce', result.stderr)
        mark = run_cli('--num_steps', 1, '--prompt', 'e\u0301')    # a lone accent, named
        self.assertIn("'é'", mark.stderr)                          # (NFC joins it to é)

    def test_a_bad_byte_is_found_on_its_line_whatever_the_line_breaks(self):
        for sep in (b'\n', b'\r', b'\r\n'):
            with self.subTest(sep=sep):
                path = self.write('bad.txt', sep.join([b'anna'] * 200 + [b'caf\xe9']) + sep)
                result = run_cli('--input', path)
                self.assertIn('(line 201)', result.stderr)

    def test_damaged_checkpoints_are_explained_without_pythons_internals(self):
        path = os.path.join(self.tmp.name, 'ck.json')
        self.assertEqual(self.in_process('--num_steps', 1, '--eval_docs', 0, '--num_samples', 0,
                                         '--save', path)[0], 0)
        with open(path) as f:
            ck = json.load(f)
        damaged = {'config a list': dict(ck, config=[16, 4, 1, 16]),
                   'rows of numbers': dict(ck, state_dict=dict(ck['state_dict'], wte=[1, 2, 3])),
                   'chars a number': dict(ck, chars=7),
                   'a string weight': dict(ck, state_dict=dict(ck['state_dict'], wpe=[['x'] * 16] * 16)),
                   'no step': {k: v for k, v in ck.items() if k != 'step'},
                   'docs_seen negative': dict(ck, docs_seen=-3),
                   'a list': [ck], 'a number': 7, 'null': None, 'a string': 'format',
                   'rows that are numbers': dict(ck, state_dict=dict(ck['state_dict'],
                                                                     wte=[1] * 28))}
        for name, value in damaged.items():
            with self.subTest(damage=name):
                with open(path, 'w') as f:
                    json.dump(value, f)
                with self.assertRaises(microgpt.InputError) as caught:
                    microgpt.load_checkpoint(path)
                message = str(caught.exception)
                self.assertIn('damaged or not a microgpt checkpoint', message)
                for internal in ('indices must be', 'not iterable', 'has no attribute', 'NoneType',
                                 'object is not', 'KeyError'):
                    self.assertNotIn(internal, message)

    def test_flags_that_would_do_nothing_are_said(self):
        result = run_cli('--num_steps', 1, '--save_every', 5)
        self.assertEqual((result.returncode, result.stderr.strip()),
                         (2, 'error: --save_every needs --save PATH: there is nothing to save to'))
        result = run_cli('--num_steps', 5, '--warmup_steps', 100, '--eval_docs', 1, '--num_samples', 0)
        self.assertEqual(result.returncode, 0)
        self.assertRegex(result.stderr, r'^warning: --warmup_steps 100 is not below --num_steps 5: '
                                        r'the learning rate climbs all run, to 0.0005 at most')
        piped = subprocess.run([sys.executable, SCRIPT, '--input', '/dev/stdin'], input='anna\n',
                               capture_output=True, text=True, cwd=ROOT, timeout=60)
        self.assertEqual(piped.returncode, 2)
        self.assertIn('is not a regular file; save the data to a file first', piped.stderr)

    def test_pypy_restarts_only_its_own_command_line(self):
        # (pasted into a notebook under PyPy, the file would execve the kernel itself)
        pypy = mock.Mock(name='pypy')
        pypy.name = 'pypy'
        for in_notebook, argv0, restarts in ((False, microgpt.__file__, True),
                                             (True, microgpt.__file__, False),
                                             (False, '/usr/bin/ipython', False)):
            with self.subTest(in_notebook=in_notebook, argv0=argv0):
                modules = dict(sys.modules, ipykernel=mock.Mock()) if in_notebook else dict(sys.modules)
                modules.pop('ipykernel', None) if not in_notebook else None
                with mock.patch.object(microgpt.sys, 'implementation', pypy), \
                        mock.patch.object(microgpt.sys, 'argv', [argv0]), \
                        mock.patch.dict(microgpt.sys.modules, modules, clear=True), \
                        mock.patch.dict(os.environ, {}, clear=False) as env, \
                        mock.patch.object(microgpt.os, 'execve') as execve:
                    env.pop('PYPY_GC_NURSERY', None)
                    microgpt.restart_with_a_small_pypy_nursery()
                self.assertEqual(execve.called, restarts)

    def test_the_validation_loss_is_the_mean_over_the_validation_documents_evaluated(self):
        # on a file of 40 names, 4 held out: --eval_docs 300 evaluates those 4, and the
        # printed loss is their mean loss (not the training documents', not / 300)
        path = self.write('names40.txt', '\n'.join(microgpt.read_input(
            os.path.join(ROOT, 'names.txt'))[:40]).encode())
        ck = os.path.join(self.tmp.name, 'ck.json')
        status, out = self.in_process('--input', path, '--num_steps', 2, '--eval_docs', 300,
                                      '--num_samples', 0, '--save', ck)
        self.assertEqual(status, 0)
        printed = float(re.findall(r'val loss (\d\.\d{4}) \(4 docs\)', out)[-1])
        model = microgpt.load_checkpoint(ck)
        _, val_docs = microgpt.split_docs(microgpt.read_input(path), 0.1, random.Random(42))
        losses = [microgpt.doc_loss(model.tokenizer.encode_doc(d), model.state_dict, model.config).data
                  for d in val_docs]
        self.assertEqual(len(val_docs), 4)
        self.assertAlmostEqual(printed, sum(losses) / 4, places=4)

    def test_the_loss_curve_draws_the_running_mean_not_the_last_loss(self):
        history = {'train': [3.0] * 99 + [0.0], 'val': []}       # the last tenth's mean: 2.7
        lines = microgpt.loss_curve(history, width=10, height=4).splitlines()
        self.assertEqual(lines[4].split('|')[0].strip(), '2.70')  # the lowest row, not 0.00

    def test_the_bench_reports_the_median_of_its_steps(self):
        watch = mock.Mock(history={'ms': [9.0, 1.0, 2.0, 5.0, 7.0]}, graphs=[(10, 20)])
        watch.args.batch_size = 1
        report = microgpt.bench_report(watch, microgpt.GPTConfig(28, 16, 4, 1, 16))
        self.assertIn('ms per step: median 5.00 (min 1.00, max 9.00)', report)

    def test_out_of_memory_is_one_line_and_status_2(self):
        err = io.StringIO()
        with mock.patch.object(microgpt, 'run', side_effect=MemoryError), \
                mock.patch.object(microgpt.sys, 'stderr', err), \
                mock.patch.dict(microgpt.sys.modules, {'ipykernel': None}):
            sys.modules.pop('ipykernel', None)
            with self.assertRaises(SystemExit) as stop:
                microgpt.main(['--num_steps', '1'])
        self.assertEqual(stop.exception.code, 2)
        self.assertEqual(err.getvalue(), 'error: out of memory; try a smaller model, --batch_size '
                                         'or input file\n')


if __name__ == '__main__':
    unittest.main()
