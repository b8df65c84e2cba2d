"""The command line as a new user meets it: help, defaults in one place, and every bad
input one line and exit status 2, found before any work."""
import contextlib
import inspect
import io
import os
import re
import subprocess
import sys
import tempfile
import unittest
from unittest import mock

import microgpt
from tests import ROOT, SCRIPT, in_process, run_cli, samples_of, slow


class TestHelpAndDefaults(unittest.TestCase):

    def test_help_lists_every_flag_with_its_default(self):
        result = run_cli('--help')
        self.assertEqual(result.returncode, 0)
        text = ' '.join(result.stdout.split())
        for name, default in microgpt.DEFAULTS.items():
            self.assertIn(f'--{name}', text)
            if default not in (None, '', False):
                shown = f'{default:g}' if isinstance(default, float) else str(default)
                self.assertRegex(text, rf'--{name} .*?\(default {re.escape(shown)}\)')

    def test_the_storys_defaults_are_train_and_samples_own(self):
        story = inspect.signature(microgpt.train_and_sample).parameters
        for name, p in story.items():
            if name != 'input':
                self.assertEqual(microgpt.DEFAULTS[name], p.default, name)
        status, out, _ = in_process('--num_steps', 0, '--num_samples', 0, '--eval_docs', 0)
        self.assertEqual(status, 0)
        self.assertIn('GPTConfig(vocab_size=28, n_embd=16, n_head=4, n_layer=1, block_size=16)', out)

    def test_a_default_run_finds_names_beside_the_script_from_any_folder(self):
        with tempfile.TemporaryDirectory() as tmp:
            result = run_cli('--num_steps', 1, '--num_samples', 1, '--eval_docs', 1, cwd=tmp)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(os.path.join(ROOT, 'names.txt'), result.stdout)
        self.assertIn('26919 training documents, 3776 parameters', result.stdout)
        self.assertEqual(len(samples_of(result.stdout)), 1)

    def test_num_samples_0_only_trains(self):
        status, out, _ = in_process('--num_steps', 1, '--num_samples', 0, '--eval_docs', 1)
        self.assertEqual(status, 0)
        self.assertNotIn('samples', out)

    def test_importing_the_module_runs_nothing(self):
        out = subprocess.run([sys.executable, '-c', 'import microgpt'], capture_output=True,
                             text=True, cwd=ROOT, timeout=60)
        self.assertEqual((out.returncode, out.stdout, out.stderr), (0, '', ''))

    def test_a_notebook_gets_a_short_list_of_names(self):
        names = {}
        exec('from microgpt import *', names)
        names.pop('__builtins__')
        self.assertLessEqual(len(names), 40)
        for name in ('Value', 'gpt', 'train', 'sample', 'train_and_sample', 'main',
                     'backward_table', 'gradient_check', 'attention_maps', 'next_token_table'):
            self.assertIn(name, names)
        public = [n for n in vars(microgpt) if not n.startswith('_') and n not in names]
        for name in public:                  # what is not exported: modules and constants
            self.assertTrue(inspect.ismodule(getattr(microgpt, name)) or name.isupper()
                            or name in ('namedtuple', 'count', 'mul', 'made'),
                            name)


class TestBadInput(unittest.TestCase):
    """Each bad input: exit status 2 and ONE line on stderr saying what is wrong, before
    any training."""

    def assert_refused(self, args, *words):
        status, out, err = in_process('--num_steps', 1, '--num_samples', 1, '--eval_docs', 1,
                                      *args)
        self.assertEqual(status, 2, f'{args}: {err}')
        lines = err.strip().splitlines()
        self.assertEqual(len(lines), 1, err)
        self.assertTrue(lines[0].startswith('error: '), lines[0])
        for word in words:
            self.assertIn(word, lines[0])
        self.assertNotIn('| loss', out)
        return lines[0]

    def test_bad_input_files(self):
        with tempfile.TemporaryDirectory() as tmp:
            def write(name, data):
                path = os.path.join(tmp, name)
                with open(path, 'wb') as f:
                    f.write(data)
                return path
            cases = [([os.path.join(tmp, 'missing.txt')], 'not found'),
                     ([write('empty.txt', b'')], 'empty'),
                     ([write('blank.txt', b'\n  \n\n')], 'empty'),
                     ([write('latin1.txt', 'caf\u00e9\n'.encode('latin-1'))], 'not UTF-8'),
                     ([tmp], 'not a regular file'),
                     (['/dev/zero'], 'not a regular file')]
            if hasattr(os, 'mkfifo'):
                os.mkfifo(os.path.join(tmp, 'fifo'))
                cases.append(([os.path.join(tmp, 'fifo')], 'not a regular file'))
            big = os.path.join(tmp, 'big.txt')
            with open(big, 'wb') as f:
                f.truncate(17 * 2 ** 20)                      # (sparse: no disk space)
            cases.append(([big], 'at most 16 MB'))
            for (path,), word in cases:
                with self.subTest(path=path):
                    line = self.assert_refused(['--input', path], word)
                    self.assertEqual(line.count(os.path.basename(path)), 1, line)   # (said once)

    def test_bad_flags(self):
        cases = [
            (['--prompt', 'Zoe'], "--prompt 'Zoe': character 'Z' is not in the vocabulary"),
            (['--prompt', 'a' * 17], 'at most 16 fit in block_size 16'),
            (['--show_attention', 'a' * 16], 'at most 15 fit'),       # (<BOS> takes a place)
            (['--show_next', 'a' * 16], 'at most 15 fit'),
            (['--gradcheck', 'a' * 17], 'at most 16 fit'),
            (['--n_embd', '10'], '--n_embd 10 is not divisible by --n_head 4'),
            (['--n_embd', '0'], '--n_embd must be from 1 to'),
            (['--n_layer', '0'], '--n_layer'), (['--block_size', '-3'], '--block_size'),
            (['--num_samples', '-1'], '--num_samples'), (['--batch_size', '0'], '--batch_size'),
            (['--eval_every', '0'], '--eval_every must be from 1 to'),
            (['--temperature', '0'], '--temperature must be a positive number'),
            (['--temperature', 'nan'], '--temperature'), (['--temperature', 'inf'], '--temperature'),
            (['--temperature', '1e-320', '--show_next', 'a'], '(above 1e-100)'),   # (1 / T: inf)
            (['--learning_rate', '-1'], '--learning_rate'), (['--learning_rate', 'abc'], 'abc'),
            (['--val_fraction', '1'], '--val_fraction'), (['--n_embd', 'sixteen'], 'sixteen'),
            (['--no_such_flag'], 'no_such_flag'),
            (['--num_steps', str(10 ** 400)], '--num_steps must be from 0 to 1000000000'),
            (['--seed', '-5'], '--seed must be from 0'),     # (Random(-5) is Random(5))
            (['--weight_decay', '1000'], '--weight_decay must be from 0 to below 1 / '
                                         '--learning_rate (100)'),
            (['--save_every', '5'], '--save_every needs --save PATH'),
            (['--bench', '--num_steps', '0'], '--bench times 1 or more'),
        ]
        for args, words in cases:
            with self.subTest(args=args):
                self.assert_refused(args, words)
        for flag in ('--input', '--save', '--load'):
            self.assert_refused([flag, ''], 'needs a file name (not empty')
            self.assert_refused([flag, 'a\0b'], 'without a NUL character')

    def test_a_notebook_may_give_main_numbers_or_one_string(self):
        # (main(['--num_steps', 5]) was a TypeError traceback out of main())
        for argv in (['--num_steps', 0, '--num_samples', 1, '--eval_docs', 0],
                     '--num_steps 0 --num_samples 1 --eval_docs 0'):
            with self.subTest(argv=argv), contextlib.redirect_stdout(io.StringIO()) as out:
                self.assertEqual(microgpt.main(argv), 0)
            self.assertIn('samples (temperature 0.5)', out.getvalue())
        with contextlib.redirect_stderr(io.StringIO()) as err:
            self.assertEqual(microgpt.main([b'--num_steps', b'0']), 2)
        self.assertIn("unrecognized arguments: b'--num_steps'", err.getvalue())

    def test_a_view_of_the_first_held_out_document_fits_any_block_size(self):
        # (--block_size 2 --attention_by_hand took 2 characters after training: IndexError)
        for block_size in (1, 2, 3):
            for view in ('--attention_by_hand', '--gradcheck', '--show_gradients'):
                with self.subTest(block_size=block_size, view=view):
                    status, out, err = in_process('--block_size', block_size, '--num_steps', 0,
                                                  '--num_samples', 0, '--eval_docs', 0, view)
                    self.assertEqual((status, err), (0, ''))

    def test_the_message_shows_what_it_quotes_on_one_line(self):
        line = self.assert_refused(['--input', 'no\nsuch\x1b[31mfile'], 'not found')
        self.assertEqual(line, "error: input file 'no\\nsuch\\x1b[31mfile' not found")

    def test_an_error_that_cannot_be_printed_still_exits_with_status_2(self):
        if not os.path.exists('/dev/full'):
            self.skipTest('needs /dev/full')
        with open('/dev/full', 'w') as full:
            result = subprocess.run([sys.executable, SCRIPT, '--n_embd', '10'], stderr=full,
                                    stdout=subprocess.PIPE, timeout=60, cwd=ROOT)
        self.assertEqual(result.returncode, 2)

    def test_a_bad_byte_is_found_on_its_line_whatever_the_line_breaks(self):
        with tempfile.TemporaryDirectory() as tmp:
            for sep in (b'\n', b'\r', b'\r\n'):
                with self.subTest(sep=sep):
                    path = os.path.join(tmp, 'bad.txt')
                    with open(path, 'wb') as f:
                        f.write(sep.join([b'anna'] * 200 + [b'caf\xe9']) + sep)
                    offset = 200 * (4 + len(sep)) + 3
                    self.assert_refused(['--input', path],
                                        f'byte 0xe9 at offset {offset} (line 201)')

    def test_data_piped_in_is_refused_with_what_to_do(self):
        piped = subprocess.run([sys.executable, SCRIPT, '--input', '/dev/stdin'], input='anna\n',
                               capture_output=True, text=True, cwd=ROOT, timeout=60)
        self.assertEqual(piped.returncode, 2)
        self.assertIn('is not a regular file; save it to one first', piped.stderr)

    def test_a_short_run_says_its_learning_rate_never_decays(self):
        # (--num_steps 20 ended at 0.4 of the peak, with the default 50 warmup steps, unsaid)
        status, _, err = in_process('--num_steps', 20, '--eval_docs', 0, '--num_samples', 0)
        self.assertEqual(status, 0)
        self.assertEqual(err, 'warning: --warmup_steps 50 is not below --num_steps 20: the '
                              'learning rate climbs all run, to 0.004 at most, and never decays\n')
        status, _, err = in_process('--num_steps', 20, '--warmup_steps', 5, '--eval_docs', 0,
                                    '--num_samples', 0)
        self.assertEqual((status, err), (0, ''))

    def test_every_text_is_checked_against_the_vocabulary_whatever_num_steps_is(self):
        # (with --num_steps 0 the documents went unchecked: a view then met a character
        # the model does not know, a traceback after the start)
        with tempfile.TemporaryDirectory() as tmp:
            ck, other = os.path.join(tmp, 'ck.json'), os.path.join(tmp, 'other.txt')
            self.assertEqual(in_process('--num_steps', 0, '--num_samples', 0, '--eval_docs', 0,
                                        '--save', ck)[0], 0)
            with open(other, 'w', encoding='utf-8') as f:
                f.write('anna\nbob\nzoë\n' * 5)
            for view in (['--show_attention', 'ab'], ['--gradcheck'], ['--show_gradients'],
                         ['--show_next', 'a'], []):
                with self.subTest(view=view):
                    line = self.assert_refused(['--load', ck, '--num_steps', 0, '--input', other]
                                               + view, "character 'ë', not in the checkpoint's")
                    self.assertIn('give the --input it was trained on', line)

    def test_a_view_that_needs_a_document_says_why_there_is_none(self):
        # (5 documents: 10% of them rounds to 0 held out; the message blamed --val_fraction)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, 'five.txt')
            with open(path, 'w') as f:
                f.write('anna\nbob\ncarl\ndora\nemil\n')
            for view in ('--gradcheck', '--show_gradients', '--attention_by_hand'):
                with self.subTest(view=view):
                    self.assert_refused(['--input', path, view], f'{view} needs a document; none '
                                        'of the 5 is held out (--val_fraction 0.1): give one, as '
                                        f'{view} ')
            status, out, _ = in_process('--input', path, '--num_steps', 0, '--num_samples', 0,
                                        '--gradcheck', 'anna')
            self.assertEqual(status, 0)
            self.assertIn("gradient check on 'anna'", out)

    def test_a_decomposed_input_matches_a_composed_prompt(self):
        # (macOS writes é as e and a combining accent: a typed prompt could never match)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, 'names.txt')
            with open(path, 'w', encoding='utf-8') as f:
                f.write('Rene\u0301\nZoe\u0308\nAnne\n' * 20)
            status, out, err = in_process('--input', path, '--num_steps', 2, '--eval_docs', 0,
                                          '--num_samples', 2, '--prompt', 'Ren\u00e9')
            self.assertEqual(status, 0, err)
            self.assertTrue(all(s.startswith('René') for s in samples_of(out)), out)
            line = self.assert_refused(['--input', path, '--prompt', 'e\u0300'], 'è')
            self.assertIn("'è'", line)                   # (composed: one character, named)

    @unittest.skipUnless(os.name == 'posix', 'needs a C locale')
    def test_a_prompt_typed_in_a_c_locale_is_understood(self):
        with tempfile.TemporaryDirectory() as tmp:
            cities = os.path.join(tmp, 'cities.txt')
            with open(cities, 'w', encoding='utf-8') as f:
                f.write('\n'.join(['Zürich', 'Zug', 'Λάρισα'] * 30))
            env = dict(os.environ, LC_ALL='C', LANG='C', PYTHONUTF8='0', PYTHONCOERCECLOCALE='0')
            for prompt in ('Zür', 'Λά'):
                with self.subTest(prompt=prompt):
                    result = subprocess.run([sys.executable, SCRIPT, '--input', cities,
                                             '--num_steps', '1', '--eval_docs', '1',
                                             '--num_samples', '2', '--prompt', prompt],
                                            capture_output=True, cwd=ROOT, env=env, timeout=120)
                    self.assertEqual(result.returncode, 0, result.stderr)
            result = subprocess.run([sys.executable, SCRIPT, '--num_steps', '1', '--prompt', 'Λά'],
                                    capture_output=True, cwd=ROOT, env=env, timeout=120)
            self.assertEqual(result.returncode, 2)
            self.assertIn(b'is not in the vocabulary', result.stderr)
            self.assertNotIn(b'udcce', result.stderr)

    def test_models_too_large_for_the_memory_are_refused_at_once(self):
        for args in (['--n_embd', 100000], ['--n_layer', 10000], ['--batch_size', 10 ** 6],
                     ['--n_embd', 4096, '--n_head', 64]):
            with self.subTest(args=args):
                self.assert_refused(args, 'GB of memory', 'this process can use')

    @slow
    def test_a_vocabulary_of_every_code_point_is_refused_at_once(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, 'every.txt')
            with open(path, 'w', encoding='utf-8') as f:
                f.write(''.join(chr(c) for c in range(0x110000) if not 0xd800 <= c < 0xe000
                                and not chr(c).isspace() and c != 0x85) + '\n')
            self.assert_refused(['--input', path], 'GB of memory')

    def test_a_containers_limit_counts_less_what_it_uses(self):
        # memory.max 10 GB with 9 GB in use leaves 1 GB, whatever the machine has free
        files = {'/proc/meminfo': 'MemTotal: 99999999 kB\nMemAvailable: 50000000 kB\n',
                 '/sys/fs/cgroup/memory.max': str(10 * 2 ** 30),
                 '/sys/fs/cgroup/memory.current': str(9 * 2 ** 30)}
        real_open = open

        def fake_open(path, *a, **k):
            if path in files:
                return mock.mock_open(read_data=files[path])()
            return real_open(path, *a, **k)
        with mock.patch('builtins.open', fake_open):
            self.assertEqual(microgpt._memory_available(), 2 ** 30)

    def test_the_memory_estimate_follows_real_graphs(self):
        # the estimate's node and edge counts against doc_loss()'s real graphs: short and
        # long documents, narrow and wide, deep and not
        # (and long contexts of narrow or many heads, whose attention it once counted short)
        for shape in ((28, 16, 4, 1, 16), (30, 8, 2, 3, 7), (5, 12, 3, 2, 20), (28, 64, 4, 1, 16),
                      (28, 1, 1, 2, 48), (28, 16, 16, 1, 48)):
            config = microgpt.GPTConfig(*shape)
            tokenizer = microgpt.Tokenizer(''.join(chr(97 + i) for i in range(shape[0] - 2)))
            sd = microgpt.init_state_dict(config)
            for length in (3, config.block_size) if shape[4] < 48 else (config.block_size,):
                doc = ''.join(tokenizer.chars[i % len(tokenizer.chars)] for i in range(length))
                loss = microgpt.doc_loss(tokenizer.encode_doc(doc), sd, config)
                nodes = microgpt.topological_order(loss)
                edges = sum(len(n.children) for n in nodes)
                params = len(microgpt.parameters(sd))
                estimate = microgpt._memory_needed(config, 1, [doc])
                real = (microgpt._BYTES['node'] * len(nodes) + microgpt._BYTES['edge'] * edges
                        + microgpt._BYTES['parameter'] * params + 3 * (100 + length))
                with self.subTest(shape=shape, length=length):
                    self.assertLess(abs(estimate / real - 1), 0.1, (estimate, real))

    @slow
    def test_the_memory_estimate_is_close_to_a_real_steps_peak(self):
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
                model, adam = microgpt.Model(config, tokenizer, sd), microgpt.Adam(microgpt.parameters(sd))
                steps = microgpt.train(model, adam, docs, 2, 0.01, 0, batch_size)
                next(steps)                                      # Adam's m and v filled in
                tracemalloc.reset_peak()
                next(steps)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
                gc.enable()
            with self.subTest(shape=shape):
                ratio = microgpt._memory_needed(config, batch_size, docs) / peak
                self.assertTrue(1.0 < ratio < 1.6, ratio)

    def test_the_memory_estimate_does_not_refuse_what_fits(self):
        # (--block_size 1000 was said to need 16 GB; names are at most 15 letters)
        config = microgpt.GPTConfig(28, 16, 4, 1, 1000)
        self.assertLess(microgpt._memory_needed(config, 4, ['x' * 15] * 30000), 100 * 2 ** 20)

    def test_sizes_are_said_in_units_that_show_them(self):
        self.assertEqual([microgpt._in_units(n) for n in (200 * 2 ** 20, 3 * 2 ** 30 // 2, 5000, 20)],
                         ['200 MB', '1.5 GB', '4.9 kB', '20 bytes'])


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
        self.assertEqual(proc.returncode, 141)

    @unittest.skipUnless(os.path.exists('/dev/full'), 'needs /dev/full')
    def test_a_full_disk_on_stdout_is_one_line_and_status_1(self):
        with open('/dev/full', 'w') as full:
            result = subprocess.run([sys.executable, SCRIPT, '--num_steps', '3', '--eval_docs', '2',
                                     '--warmup_steps', '0'], stdout=full, stderr=subprocess.PIPE,
                                    text=True, timeout=120, cwd=ROOT)
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stderr.splitlines(),
                         ['error: cannot write the output: No space left on device'])

    @unittest.skipUnless(os.name == 'posix', 'needs POSIX file descriptors')
    def test_a_closed_stdout_is_no_error(self):
        result = subprocess.run([sys.executable, SCRIPT, '--num_steps', '3', '--eval_docs', '2',
                                 '--warmup_steps', '0'], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, timeout=120, cwd=ROOT,
                                preexec_fn=lambda: os.close(1))
        self.assertEqual((result.returncode, result.stderr), (0, ''))

    def test_out_of_memory_is_one_line_and_status_2(self):
        with mock.patch.object(microgpt, 'init_state_dict', side_effect=MemoryError):
            status, _, err = in_process('--num_steps', 1, '--warmup_steps', 0)
        self.assertEqual((status, err), (2, 'error: out of memory\n'))

    def test_pypy_starts_again_with_a_small_nursery_only_from_its_own_command_line(self):
        # (PyPy's young generation is as big as the CPU cache a VM reports: here 1.3 times
        # slower and 6 times the memory); never a notebook's or IPython's process
        code = ('import os, runpy, sys, types\n'
                'sys.implementation = types.SimpleNamespace(**{**vars(sys.implementation), '
                '"name": "pypy"})\n'
                'os.environ.pop("PYPY_GC_NURSERY", None)\n'
                'def execve(path, argv, env):\n'
                '    print("restart", env["PYPY_GC_NURSERY"], argv[1:]); sys.exit(0)\n'
                'os.execve = execve\n'
                'if sys.argv[2] == "ipython": sys.modules["IPython"] = types.ModuleType("IPython")\n'
                'sys.argv = [sys.argv[1], "--show_backward", "a = 2; b = a * a"]\n'
                'runpy.run_path(sys.argv[0], run_name="__main__")\n')
        for where, restarts in (('terminal', True), ('ipython', False)):
            with self.subTest(where=where):
                result = subprocess.run([sys.executable, '-c', code, SCRIPT, where],
                                        capture_output=True, text=True, cwd=ROOT, timeout=60)
                self.assertEqual(result.returncode, 0, result.stderr)
                self.assertEqual(result.stdout.startswith('restart 4MB'), restarts, result.stdout)

    @unittest.skipUnless(os.name == 'posix', 'needs POSIX signals')
    def test_a_ctrl_c_while_the_program_starts_is_quiet(self):
        # (a Ctrl-C in the first ~50 ms, while Part II's modules were imported, was a
        # KeyboardInterrupt traceback; then it was ignored, and the run went on): here it
        # comes as json is imported, and the program stops, quietly, with status 130
        code = ('import os, runpy, signal, sys\n'
                'class Finder:\n'
                '    def find_spec(self, name, path=None, target=None):\n'
                '        if name == "json":\n'
                '            os.kill(os.getpid(), signal.SIGINT)\n'
                'sys.modules.pop("json", None)\n'
                'sys.meta_path.insert(0, Finder())\n'
                'sys.argv = [sys.argv[1], "--show_backward", "a = 2; b = a * a"]\n'
                'runpy.run_path(sys.argv[0], run_name="__main__")\n')
        result = subprocess.run([sys.executable, '-c', code, SCRIPT], capture_output=True,
                                text=True, cwd=ROOT, timeout=60,
                                env=dict(os.environ, PYPY_GC_NURSERY='4MB'))
        self.assertEqual((result.returncode, result.stderr, result.stdout), (130, '', ''))


if __name__ == '__main__':
    unittest.main()
