"""The learner's workbench: checkpoints, Ctrl-C, any dataset, progress on a
terminal, the loss curve and the attention maps."""
import json
import os
import random
import re
import signal
import stat
import subprocess
import sys
import tempfile
import time
import contextlib
import io
import unittest
from unittest import mock

import microgpt
from tests import CITIES, ROOT, SCRIPT, run_cli, samples_of, slow, write_cities

SHORT = ('--num_steps', 20, '--eval_every', 10, '--eval_docs', 20)


class TestCheckpoints(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.path = os.path.join(self.tmp.name, 'model.json')

    def train_and_save(self, *extra):
        result = run_cli(*SHORT, '--num_samples', 5, '--save', self.path, *extra)
        self.assertEqual(result.returncode, 0, result.stderr)
        return result

    def test_a_saved_model_samples_again_without_training(self):
        trained = self.train_and_save()
        self.assertIn(f'saved checkpoint {self.path} (step 20)', trained.stdout)
        again = run_cli('--load', self.path, '--num_steps', 0, '--num_samples', 5)
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertNotIn('| loss', again.stdout)                # no training
        self.assertEqual(samples_of(again.stdout), samples_of(trained.stdout))

    def test_the_checkpoint_is_json_with_config_vocabulary_weights_adam_state_and_step(self):
        self.train_and_save('--n_embd', 8, '--n_head', 2, '--n_layer', 2, '--block_size', 12)
        with open(self.path) as f:
            ck = json.load(f)
        self.assertEqual(ck['config'], {'n_embd': 8, 'n_head': 2, 'n_layer': 2, 'block_size': 12})
        self.assertEqual(ck['chars'], list('abcdefghijklmnopqrstuvwxyz'))
        self.assertEqual(ck['step'], 20)
        self.assertEqual(len(ck['state_dict']['layer1.mlp_fc1']), 32)
        n = len(ck['adam_m'])
        self.assertEqual(n, sum(len(r) for m in ck['state_dict'].values() for r in m))
        self.assertEqual(len(ck['adam_v']), n)
        self.assertEqual([f for f in os.listdir(self.tmp.name)], ['model.json'])   # no temporary files left

    def test_loading_restores_every_weight_and_the_adam_state(self):
        config = microgpt.GPTConfig(6, 4, 2, 2, 5)
        sd = microgpt.init_state_dict(config, seed=3)
        adam = microgpt.Adam(microgpt.parameters(sd))
        microgpt.doc_loss([0, 2, 3, 1], sd, config).backward()
        adam.step(0.01)
        microgpt.save_checkpoint(self.path, microgpt.Model(config, microgpt.Tokenizer('abcd'), sd, adam))
        loaded = microgpt.load_checkpoint(self.path)
        self.assertEqual([p.data for p in loaded.adam.params], [p.data for p in adam.params])
        self.assertEqual((loaded.tokenizer.chars, loaded.config, loaded.adam.m, loaded.adam.v, loaded.adam.t),
                         (list('abcd'), config, adam.m, adam.v, 1))

    @slow
    def test_training_continues_from_a_checkpoint(self):
        self.train_and_save()
        more = os.path.join(self.tmp.name, 'more.json')
        result = run_cli('--load', self.path, *SHORT, '--num_samples', 2, '--save', more)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn('trained for 20 steps so far', result.stdout)
        with open(more) as f:
            self.assertEqual(json.load(f)['step'], 40)
        fresh = run_cli(*SHORT, '--num_samples', 0)
        # the resumed model starts where the first run ended, far below a fresh start
        resumed_start = re.search(r'step 0/20 \| val loss (\d+\.\d+)', result.stdout).group(1)
        fresh_start = re.search(r'step 0/20 \| val loss (\d+\.\d+)', fresh.stdout).group(1)
        self.assertLess(float(resumed_start), float(fresh_start) - 0.2)

    def test_a_shape_flag_that_contradicts_the_checkpoint_is_an_error(self):
        self.train_and_save()
        for flag, value in (('--n_embd', 32), ('--n_head', 2), ('--n_layer', 2), ('--block_size', 8)):
            with self.subTest(flag=flag):
                result = run_cli('--load', self.path, flag, value, '--num_steps', 0)
                self.assertEqual(result.returncode, 2)
                self.assertEqual(len(result.stderr.strip().splitlines()), 1, result.stderr)
                self.assertIn(f'{flag} {value} differs from the checkpoint', result.stderr)
        agreeing = run_cli('--load', self.path, '--n_embd', 16, '--num_steps', 0, '--num_samples', 1)
        self.assertEqual(agreeing.returncode, 0, agreeing.stderr)

    @slow
    def test_a_damaged_checkpoint_is_a_one_line_error_and_stays_untouched(self):
        self.train_and_save()
        with open(self.path) as f:
            good = f.read()
        ck = json.loads(good)
        broken_rows = dict(ck, state_dict=dict(ck['state_dict'], wte=ck['state_dict']['wte'][:-1]))
        nan_weight = good.replace(str(ck['state_dict']['wpe'][0][0]), 'NaN', 1)
        damaged = {
            'truncated': good[:len(good) // 2],
            'not json': 'hello',
            'empty': '',
            'other json': '[1, 2, 3]',
            'a matrix row missing': json.dumps(broken_rows),
            'a NaN weight': nan_weight,
            'wrong format tag': json.dumps(dict(ck, format='something else')),
            'adam state too short': json.dumps(dict(ck, adam_m=ck['adam_m'][:3])),
            # a config that would take hours or all memory to build: refused from the file alone
            'a huge n_layer': json.dumps(dict(ck, config=dict(ck['config'], n_layer=10 ** 9))),
            'a huge n_embd': json.dumps(dict(ck, config=dict(ck['config'], n_embd=4 * 10 ** 8))),
            'JSON nested 1000 deep': '[' * 1000 + ']' * 1000,
            'a weight of 10**400': good.replace(str(ck['state_dict']['wpe'][0][0]), '1' + '0' * 400, 1),
            'an Adam moment of 10**400': json.dumps(dict(ck, adam_m=[10 ** 400] + ck['adam_m'][1:])),
            'a negative adam_v': json.dumps(dict(ck, adam_v=[-1.0] + ck['adam_v'][1:])),
            'a step of 10**400': json.dumps(dict(ck, step=10 ** 400)),
            'huge finite weights': json.dumps(dict(ck, state_dict=dict(
                ck['state_dict'], wte=[[1e300] * len(row) for row in ck['state_dict']['wte']]))),
        }
        for name, text in damaged.items():
            with self.subTest(damage=name):
                with open(self.path, 'w') as f:
                    f.write(text)
                result = run_cli('--load', self.path, '--num_steps', 2, '--save', self.path,
                                 '--show_attention', 'emma')
                self.assertEqual(result.returncode, 2, result.stderr)
                self.assertNotIn('Traceback', result.stderr)
                self.assertEqual(len(result.stderr.strip().splitlines()), 1, result.stderr)
                self.assertIn('checkpoint', result.stderr)
                with open(self.path) as f:
                    self.assertEqual(f.read(), text)          # nothing overwritten
        missing = run_cli('--load', os.path.join(self.tmp.name, 'nope.json'))
        self.assertEqual((missing.returncode, missing.stderr.count('\n')), (2, 1))

    def test_data_with_characters_outside_the_checkpoint_vocabulary_is_an_error(self):
        self.train_and_save()
        other = os.path.join(self.tmp.name, 'other.txt')
        with open(other, 'w', encoding='utf-8') as f:
            f.write('anna\nzoë\n')
        result = run_cli('--load', self.path, '--input', other, '--num_steps', 2)
        self.assertEqual(result.returncode, 2)
        self.assertEqual(len(result.stderr.strip().splitlines()), 1, result.stderr)
        self.assertIn("'ë'", result.stderr)


class TestNothingLost(unittest.TestCase):
    """A file the user has is never replaced by something unloadable; a save never
    leaves litter; a run that would fail at its end fails at its start."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.path = os.path.join(self.tmp.name, 'good.json')

    def save_a_good_checkpoint(self):
        result = run_cli('--num_steps', 10, '--eval_docs', 5, '--num_samples', 0, '--save', self.path)
        self.assertEqual(result.returncode, 0, result.stderr)
        with open(self.path, 'rb') as f:
            return f.read()

    def assert_one_line_error(self, result, *words):
        self.assertEqual(result.returncode, 2, result.stdout[-1000:] + result.stderr)
        self.assertNotIn('Traceback', result.stderr)
        self.assertEqual(len(result.stderr.strip().splitlines()), 1, result.stderr)
        for word in words:
            self.assertIn(word, result.stderr)

    def test_a_diverging_run_never_replaces_a_good_checkpoint(self):
        good = self.save_a_good_checkpoint()
        cases = [  # flags that make training diverge, and the cause the message must name
            (['--learning_rate', '1e308'], 'try a smaller --learning_rate than 1e+308'),
            (['--learning_rate', '1e100'], 'at step'),
            (['--weight_decay', '1000'], 'use a --weight_decay below 100'),   # (refused at once)
        ]
        for flags, cause in cases:
            with self.subTest(flags=flags):
                result = run_cli('--load', self.path, '--save', self.path, '--save_every', 1,
                                 '--num_steps', 5, '--eval_docs', 5, '--num_samples', 2, *flags)
                self.assert_one_line_error(result, cause)
                with open(self.path, 'rb') as f:
                    self.assertEqual(f.read(), good)
                microgpt.load_checkpoint(self.path)                  # and it still loads
                self.assertEqual(os.listdir(self.tmp.name), ['good.json'])

    @slow
    def test_a_finite_explosion_is_reported(self):
        result = run_cli('--learning_rate', 30, '--num_steps', 20, '--eval_docs', 5, '--num_samples', 1)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertRegex(result.stderr, r'^warning: training diverged: the loss ended at [\d.]+, worse '
                                        r'than at its start \([\d.]+\) and than a uniform guess '
                                        r'\(3\.33\); try a smaller --learning_rate')
        healthy = run_cli('--num_steps', 20, '--eval_docs', 5, '--num_samples', 1)
        self.assertEqual(healthy.stderr, '')

    def test_save_refuses_what_is_not_a_checkpoint_before_training(self):
        data = os.path.join(self.tmp.name, 'data.txt')
        write_cities(data)
        cases = [
            ([os.devnull], 'not a regular file'),                 # a device
            ([self.tmp.name], 'not a regular file'),              # a folder
            ([data, '--input', data], 'is the training data'),
            ([os.path.join(self.tmp.name, 'missing', 'x.json')], 'cannot write checkpoint'),
        ]
        for (target, *more), word in cases:
            with self.subTest(target=target):
                result = run_cli('--num_steps', 100000, '--save', target, *more)
                self.assert_one_line_error(result, word)
                self.assertNotIn('| loss', result.stdout)          # refused before training
        with open(data, encoding='utf-8') as f:
            self.assertEqual(f.read().splitlines(), CITIES)

    @unittest.skipUnless(hasattr(os, 'symlink') and os.name == 'posix', 'needs POSIX links and modes')
    def test_save_writes_through_a_symlink_and_keeps_the_file_mode(self):
        target, link = os.path.join(self.tmp.name, 'target.json'), os.path.join(self.tmp.name, 'link.json')
        with open(target, 'wb') as f:
            f.write(self.save_a_good_checkpoint())
        os.remove(self.path)
        os.chmod(target, 0o640)
        os.symlink(target, link)
        result = run_cli('--num_steps', 2, '--eval_docs', 2, '--num_samples', 0, '--save', link)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertTrue(os.path.islink(link))
        self.assertEqual(microgpt.load_checkpoint(link).adam.t, 2)
        self.assertEqual(stat.S_IMODE(os.stat(target).st_mode), 0o640)
        fresh = os.path.join(self.tmp.name, 'fresh.json')          # a new file: the umask's mode
        result = run_cli('--num_steps', 1, '--eval_docs', 0, '--num_samples', 0, '--save', fresh,
                         preexec_fn=lambda: os.umask(0o022))
        self.assertEqual(stat.S_IMODE(os.stat(fresh).st_mode), 0o644)

    @unittest.skipUnless(os.name == 'posix', 'needs resource limits')
    def test_a_failed_save_leaves_the_old_file_and_no_temporary_file(self):
        import resource

        def small_files_only():                     # as a full disk: writes past 20 kB fail
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
        good = self.save_a_good_checkpoint()
        result = run_cli('--load', self.path, '--num_steps', 2, '--eval_docs', 2, '--num_samples', 3,
                         '--save', self.path, preexec_fn=small_files_only)
        # a save that fails late is said, and the run keeps what can be kept: it samples,
        # leaves the last good checkpoint, and ends with status 1
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertRegex(result.stderr, r"^warning: cannot write checkpoint '.*good.json': File too "
                                        r"large \(the file there is unchanged\); training goes on\n$")
        self.assertEqual(len(samples_of(result.stdout)), 3)
        with open(self.path, 'rb') as f:
            self.assertEqual(f.read(), good)
        self.assertEqual(os.listdir(self.tmp.name), ['good.json'])

    def test_an_interrupted_save_leaves_the_old_checkpoint_byte_for_byte(self):
        # a Ctrl-C (or any error) in the middle of writing: the old file is untouched,
        # loads, and no temporary file is left. A save that wrote in place would fail.
        good = self.save_a_good_checkpoint()
        model = microgpt.load_checkpoint(self.path)
        for p in model.adam.params:
            p.data += 1.0

        def cut_short_then_interrupt(fd):      # (as the file is flushed to the disk)
            os.ftruncate(fd, 5000)
            raise KeyboardInterrupt
        with mock.patch.object(microgpt.os, 'fsync', cut_short_then_interrupt):
            with self.assertRaises(KeyboardInterrupt):
                microgpt.save_checkpoint(self.path, model)
        with open(self.path, 'rb') as f:
            self.assertEqual(f.read(), good)
        self.assertEqual(microgpt.load_checkpoint(self.path).adam.t, 10)
        self.assertEqual(os.listdir(self.tmp.name), ['good.json'])

    def test_a_resumed_run_goes_on_exactly_as_one_replayed_by_hand(self):
        # The second run must start from the checkpoint's weights, its Adam state (m, v
        # and the step) and its place in the data: the same steps taken here by hand,
        # with Part I's own functions, must give the very same numbers.
        more = os.path.join(self.tmp.name, 'more.json')
        shared = ('--eval_docs', 0, '--num_samples', 0, '--batch_size', 2)
        first = run_cli('--num_steps', 12, '--save', self.path, *shared)
        self.assertEqual(first.returncode, 0, first.stderr)
        second = run_cli('--load', self.path, '--num_steps', 7, '--learning_rate', 0.02,
                         '--warmup_steps', 2, '--save', more, *shared)
        self.assertEqual(second.returncode, 0, second.stderr)
        model = microgpt.load_checkpoint(self.path)
        train_docs, _ = microgpt.split_docs(microgpt.read_input(os.path.join(ROOT, 'names.txt')), 0.1,
                                            random.Random(42))
        for step in range(7):                 # the loop written out: 2 documents a step,
            first = (12 + step) * 2           # from where the first run's 12 steps stopped
            tokens = [model.tokenizer.encode_doc(train_docs[first + b]) for b in range(2)]
            losses = [microgpt.doc_loss(t, model.state_dict, model.config) for t in tokens]
            ((losses[0] + losses[1]) / 2).backward()
            model.adam.step(microgpt.lr_at(step, 7, 0.02, 2))
        want = microgpt.load_checkpoint(more)
        self.assertEqual(want.adam.t, 19)
        self.assertEqual(model.adam.t, want.adam.t)
        self.assertEqual([p.data for p in model.adam.params], [p.data for p in want.adam.params])
        self.assertEqual((model.adam.m, model.adam.v), (want.adam.m, want.adam.v))


    def test_a_checkpoint_too_large_to_load_back_is_never_written(self):
        good = self.save_a_good_checkpoint()
        model = microgpt.load_checkpoint(self.path)
        with mock.patch.object(microgpt, 'MAX_CHECKPOINT_BYTES', len(good) // 2):
            with self.assertRaisesRegex(microgpt.InputError, 'not written'):
                microgpt.save_checkpoint(self.path, model)
        with open(self.path, 'rb') as f:
            self.assertEqual(f.read(), good)
        # and before training, from the shape alone: 320 x 320 matrices, about 90 MB of JSON
        result = run_cli('--n_embd', 320, '--num_steps', 1, '--save', self.path)
        self.assert_one_line_error(result, 'at most 64 MB')
        with open(self.path, 'rb') as f:
            self.assertEqual(f.read(), good)

    def test_a_checkpoint_trained_past_a_billion_steps_loads(self):
        # each run may take up to 10**9 steps; the checkpoint's count goes on from there
        self.save_a_good_checkpoint()
        with open(self.path) as f:
            ck = json.load(f)
        for step, loads in ((3 * 10 ** 9, True), (10 ** 15, True), (10 ** 15 + 1, False)):
            ck['step'] = step
            with open(self.path, 'w') as f:
                json.dump(ck, f)
            if loads:
                self.assertEqual(microgpt.load_checkpoint(self.path).adam.t, step)
            else:
                self.assertRaises(microgpt.InputError, microgpt.load_checkpoint, self.path)

    def test_a_checkpoint_with_a_line_break_in_its_vocabulary_is_refused(self):
        # no training file can give one (a line break ends a document)
        self.save_a_good_checkpoint()
        with open(self.path) as f:
            ck = json.load(f)
        for ch in '\n\r':
            ck['chars'] = sorted(ck['chars'][:-1] + [ch])
            with open(self.path, 'w') as f:
                json.dump(ck, f)
            self.assertRaisesRegex(microgpt.InputError, 'chars', microgpt.load_checkpoint, self.path)

    def test_a_json_bomb_is_refused_before_it_is_read(self):
        # 3 bytes of [] are a 56-byte list: a 64 MB file could take 1.5 GB
        with open(self.path, 'w') as f:
            f.write('[' + '[],' * 1000 + '[]]')
        with mock.patch.object(microgpt, 'available_memory', return_value=20000):
            with self.assertRaisesRegex(microgpt.InputError, 'more than is available'):
                microgpt.load_checkpoint(self.path)

    def test_weights_broken_by_the_last_step_stop_the_run(self):
        # the last update is in no loss: the run must not go on to sample from nan
        original_step = microgpt.Adam.step

        def step_then_break(adam, lr):
            original_step(adam, lr)
            adam.params[0].data = float('nan')
        args = microgpt.parse_args(['--num_steps', '1', '--eval_docs', '0', '--num_samples', '3'])
        with mock.patch.object(microgpt.Adam, 'step', step_then_break), \
                contextlib.redirect_stdout(io.StringIO()) as out:
            with self.assertRaisesRegex(microgpt.InputError, 'nan at step 1'):
                microgpt.run(args)
        self.assertNotIn('samples (temperature', out.getvalue())

    def test_sigterm_in_the_middle_of_a_save_leaves_no_temporary_file(self):
        good = self.save_a_good_checkpoint()
        model = microgpt.load_checkpoint(self.path)
        with mock.patch.object(microgpt.os, 'fsync', microgpt.terminate):
            with self.assertRaises(SystemExit) as stop:
                microgpt.save_checkpoint(self.path, model)
        self.assertEqual(stop.exception.code, 143)
        with open(self.path, 'rb') as f:
            self.assertEqual(f.read(), good)
        self.assertEqual(os.listdir(self.tmp.name), ['good.json'])

    def test_save_paths_that_would_fail_or_destroy_something_are_refused_before_training(self):
        good = self.save_a_good_checkpoint()
        read_only = os.path.join(self.tmp.name, 'read_only.json')
        with open(read_only, 'wb') as f:
            f.write(good)
        os.chmod(read_only, 0o444)
        long_name = os.path.join(self.tmp.name, 'x' * 250 + '.json')   # fits; its temporary does not
        for path, words in ((read_only, 'read-only'), (long_name, 'cannot write checkpoint')):
            with self.subTest(path=path[-30:]):
                result = run_cli('--num_steps', 1, '--eval_docs', 1, '--save', path)
                self.assert_one_line_error(result, *words.split(','))
        with open(read_only, 'rb') as f:
            self.assertEqual(f.read(), good)
        config = microgpt.GPTConfig(28, 16, 4, 1, 16)
        with mock.patch.object(microgpt.shutil, 'disk_usage', return_value=mock.Mock(free=1000)):
            with self.assertRaisesRegex(microgpt.InputError, "has 1000 bytes free"):
                microgpt.check_save_path(self.path, os.path.join(ROOT, 'names.txt'), config)
        self.assertEqual(sorted(os.listdir(self.tmp.name)), ['good.json', 'read_only.json'])

    def test_the_file_the_output_goes_to_is_not_overwritten_by_the_save(self):
        log = os.path.join(self.tmp.name, 'log.txt')
        with open(log, 'w') as out:
            out.write('yesterday\n')
        with open(log, 'a') as out:
            result = subprocess.run([sys.executable, SCRIPT, '--num_steps', '1', '--save', log],
                                    stdout=out, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        self.assertEqual(result.returncode, 2)
        self.assertIn("where this run's output goes", result.stderr)
        with open(log) as f:
            self.assertEqual(f.read(), 'yesterday\n')



class TestNothingLostSecondRound(unittest.TestCase):
    """What a second adversarial run broke: a save replaced files that were not
    checkpoints, a trailing slash wrote elsewhere, a late save failure threw the run
    away, a killed save left litter, a resumed run re-read documents."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.path = os.path.join(self.tmp.name, 'good.json')

    def run_ok(self, *args):
        result = run_cli(*args)
        self.assertEqual(result.returncode, 0, result.stderr)
        return result

    def test_save_replaces_only_a_microgpt_checkpoint(self):
        # (`--save microgpt.py` replaced the script with JSON; the same with README.md)
        for name, text in (('script.py', 'print("hello")\n'), ('notes.md', '# notes\n'),
                           ('data.json', '{"format": "something else"}')):
            with self.subTest(name=name):
                target = os.path.join(self.tmp.name, name)
                with open(target, 'w') as f:
                    f.write(text)
                result = run_cli('--num_steps', 0, '--num_samples', 0, '--save', target)
                self.assertEqual(result.returncode, 2)
                self.assertEqual(result.stderr.splitlines(),
                                 [f"error: --save {target!r} exists and is not a microgpt "
                                  f"checkpoint; refusing to replace it: remove it first, or save "
                                  f"elsewhere"])
                with open(target) as f:
                    self.assertEqual(f.read(), text)
        self.run_ok('--num_steps', 1, '--eval_docs', 0, '--num_samples', 0, '--save', self.path)
        self.run_ok('--load', self.path, '--num_steps', 1, '--eval_docs', 0, '--num_samples', 0,
                    '--save', self.path)                           # a checkpoint: replaced
        self.assertEqual(microgpt.load_checkpoint(self.path).adam.t, 2)
        empty = os.path.join(self.tmp.name, 'empty.json')          # (mktemp's empty file)
        open(empty, 'w').close()
        self.run_ok('--num_steps', 0, '--num_samples', 0, '--save', empty)

    def test_a_save_path_ending_in_a_slash_is_refused(self):
        victim = os.path.join(self.tmp.name, 'victim.txt')
        with open(victim, 'w') as f:
            f.write('keep me')
        for path in (os.path.join(self.tmp.name, 'outdir') + os.sep, victim + os.sep):
            with self.subTest(path=path):
                result = run_cli('--num_steps', 1, '--num_samples', 0, '--save', path)
                self.assertEqual(result.returncode, 2)
                self.assertIn('give the file name to save to', result.stderr)
        with open(victim) as f:
            self.assertEqual(f.read(), 'keep me')
        self.assertEqual(sorted(os.listdir(self.tmp.name)), ['victim.txt'])

    @unittest.skipUnless(os.name == 'posix', 'needs POSIX owners')
    def test_save_is_checked_as_this_user_will_act(self):
        # in a shared (sticky) folder, another user's file cannot be replaced: root's
        # reasoning passed it, and the save failed after training
        config = microgpt.GPTConfig(28, 16, 4, 1, 16)
        shared = os.path.join(self.tmp.name, 'shared')
        os.mkdir(shared)
        os.chmod(shared, 0o1777)
        theirs = os.path.join(shared, 'theirs.json')
        self.run_ok('--num_steps', 0, '--num_samples', 0, '--save', theirs)
        with mock.patch.object(microgpt.os, 'geteuid', return_value=os.stat(theirs).st_uid + 4321):
            with self.assertRaisesRegex(microgpt.InputError, 'belongs to another user'):
                microgpt.check_save_path(theirs, os.path.join(ROOT, 'names.txt'), config)
        # and room for the new copy beside the old: twice a checkpoint for a new file
        size = microgpt.checkpoint_bytes(config)
        with mock.patch.object(microgpt.shutil, 'disk_usage',
                               return_value=mock.Mock(free=int(1.5 * size))):
            with self.assertRaisesRegex(microgpt.InputError, 'a new one is written beside the old'):
                microgpt.check_save_path(self.path, os.path.join(ROOT, 'names.txt'), config)

    def test_a_save_killed_outright_leaves_litter_the_next_save_clears(self):
        self.run_ok('--num_steps', 1, '--eval_docs', 0, '--num_samples', 0, '--save', self.path)
        dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                              capture_output=True, text=True).stdout.strip()   # (gone by now)
        stale = os.path.join(self.tmp.name, f'good.json.{dead}.abcd1234.tmp')
        running = os.path.join(self.tmp.name, 'good.json.1.efgh5678.tmp')      # (init: alive)
        other = os.path.join(self.tmp.name, 'other.json.99999999.abcd1234.tmp')
        for name in (stale, running, other):
            with open(name, 'w') as f:
                f.write('{"format": "microgpt checkpoint 1", "half": ')
        self.run_ok('--load', self.path, '--num_steps', 1, '--eval_docs', 0, '--num_samples', 0,
                    '--save', self.path)
        self.assertEqual(sorted(os.listdir(self.tmp.name)),
                         sorted(['good.json', os.path.basename(running), os.path.basename(other)]))

    def test_a_resumed_run_reads_on_whatever_its_batch_size(self):
        # 10 steps of 4 documents, then 5 steps of 1: the second run trains on documents
        # 40-44, not 10-14 again (the place in the data was steps x the new batch size)
        more = os.path.join(self.tmp.name, 'more.json')
        shared = ('--eval_docs', 0, '--num_samples', 0)
        self.run_ok('--num_steps', 10, '--batch_size', 4, '--save', self.path, *shared)
        self.run_ok('--load', self.path, '--num_steps', 5, '--batch_size', 1, '--warmup_steps', 0,
                    '--save', more, *shared)
        model = microgpt.load_checkpoint(self.path)
        train_docs, _ = microgpt.split_docs(microgpt.read_input(os.path.join(ROOT, 'names.txt')),
                                            0.1, random.Random(42))
        for step in range(5):
            microgpt.train_step(model, [train_docs[40 + step]], microgpt.lr_at(step, 5, 0.01, 0))
        want = microgpt.load_checkpoint(more)
        self.assertEqual([p.data for p in model.adam.params], [p.data for p in want.adam.params])
        with open(more) as f:
            self.assertEqual(json.load(f)['docs_seen'], 45)

    def test_save_every_saves_after_steps_n_2n_and_the_last(self):
        saved = []
        args = microgpt.parse_args(['--num_steps', '7', '--save_every', '3', '--eval_docs', '0',
                                    '--num_samples', '0', '--save', self.path])
        with mock.patch.object(microgpt, 'save_checkpoint',
                               lambda path, model, docs_seen=None: saved.append(model.adam.t)), \
                contextlib.redirect_stdout(io.StringIO()):
            microgpt.run(args)
        self.assertEqual(saved, [3, 6, 7])

    @unittest.skipUnless(os.name == 'posix', 'needs POSIX signals')
    def test_sigterm_before_training_stops_cleanly(self):
        # a SIGTERM while the input is read (before training and its handler): 143, one
        # quiet exit, as Ctrl-C's 130, not Python's default death by the signal
        code = ('import os, signal, sys\n'
                'import microgpt\n'
                'real = microgpt.read_input\n'
                'def read_then_term(path):\n'
                '    docs = real(path)\n'
                '    os.kill(os.getpid(), signal.SIGTERM)\n'
                '    return docs\n'
                'microgpt.read_input = read_then_term\n'
                'microgpt.entry_point()\n')
        result = subprocess.run([sys.executable, '-c', code, '--num_steps', '5'],
                                capture_output=True, text=True, cwd=ROOT, timeout=120)
        self.assertEqual(result.returncode, 143, result.stderr)
        self.assertNotIn('Traceback', result.stderr)
        self.assertNotIn('| loss', result.stdout)

    @unittest.skipUnless(os.name == 'posix', 'needs POSIX signals')
    def test_sigterm_outside_training_stops_cleanly(self):
        # a SIGTERM during the final save of `--num_steps 0 --save X` (no training to stop
        # after): the process ends with 143, the old checkpoint intact, no temporary file
        self.run_ok('--num_steps', 1, '--eval_docs', 0, '--num_samples', 0, '--save', self.path)
        with open(self.path, 'rb') as f:
            good = f.read()
        code = ('import os, signal, sys; sys.argv = [sys.argv[0]] + sys.argv[1:]\n'
                'import microgpt\n'
                'microgpt.os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGTERM)\n'
                'microgpt.entry_point()\n')
        result = subprocess.run([sys.executable, '-c', code, '--load', self.path, '--num_steps', '0',
                                 '--num_samples', '0', '--save', self.path], capture_output=True,
                                text=True, cwd=ROOT, timeout=120)
        self.assertEqual(result.returncode, 143, result.stderr)
        self.assertNotIn('Traceback', result.stderr)
        with open(self.path, 'rb') as f:
            self.assertEqual(f.read(), good)
        self.assertEqual(os.listdir(self.tmp.name), ['good.json'])


def read_until(stream, pattern, timeout):
    """Read lines from stream until one matches pattern; return all read."""
    deadline = time.monotonic() + timeout
    seen = ''
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen += line
        if re.search(pattern, line):
            return seen
    raise AssertionError(f'{pattern!r} not seen in time; output so far:\n{seen[-2000:]}')


@unittest.skipUnless(hasattr(signal, 'SIGINT') and os.name == 'posix', 'needs POSIX signals')
class TestCtrlC(unittest.TestCase):

    def test_ctrl_c_stops_after_the_step_saves_reports_and_samples(self):
        self.stop_with(signal.SIGINT)

    def test_sigterm_stops_as_ctrl_c_does(self):
        self.stop_with(signal.SIGTERM)

    def test_ctrl_c_during_a_long_evaluation_acts_at_once(self):
        # 2000 validation documents take seconds to evaluate: Ctrl-C stops between two
        proc = subprocess.Popen([sys.executable, SCRIPT, '--num_steps', '100000', '--eval_docs', '2000',
                                 '--val_fraction', '0.5', '--num_samples', '0'],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        try:
            read_until(proc.stdout, r'^26919 training|^\d+ training', timeout=120)
            time.sleep(0.5)                              # now inside the evaluation at step 0
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=120)
        finally:
            proc.kill()
        self.assertEqual(proc.returncode, 130, err)       # stopped early: not a success
        self.assertIn('interrupted: stopped after step 1', out)
        self.assertNotIn('step 0/100000 | val loss', out)    # the evaluation was cut short

    def test_a_signal_while_sampling_stops_at_once(self):
        # training is over: nothing to save or report, so a Ctrl-C or SIGTERM ends the run
        for signum, status in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
            with self.subTest(signal=signum):
                proc = subprocess.Popen([sys.executable, SCRIPT, '--num_steps', '0',
                                         '--num_samples', '100000000'],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        cwd=ROOT)
                try:
                    read_until(proc.stdout, r'samples \(temperature', timeout=120)
                    proc.stdout.readline()                       # a sample: sampling has begun
                    proc.send_signal(signum)
                    out, err = proc.communicate(timeout=60)
                finally:
                    proc.kill()
                self.assertEqual(proc.returncode, status, err)
                self.assertNotIn('Traceback', err)

    def stop_with(self, signum):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, 'ck.json')
            proc = subprocess.Popen([sys.executable, SCRIPT, '--num_steps', '100000', '--save', path,
                                     '--save_every', '0', '--eval_docs', '10', '--num_samples', '3'],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
            try:
                read_until(proc.stdout, r'^step 5/', timeout=120)
                proc.send_signal(signum)
                out, err = proc.communicate(timeout=120)
            finally:
                proc.kill()
            self.assertEqual(proc.returncode, 128 + signum, err)   # done, but stopped early
            self.assertNotIn('Traceback', err)
            self.assertRegex(out, r'interrupted: stopped after step \d+')
            step = int(re.search(r'stopped after step (\d+)', out).group(1))
            self.assertIn(f'saved checkpoint {path} (step {step})', out)
            self.assertIn(f'after {step} steps: train loss', out)            # the losses so far
            self.assertIn('loss curve', out)
            self.assertEqual(len(samples_of(out)), 3)
            with open(path) as f:
                self.assertEqual(json.load(f)['step'], step)


class TestAnyDataset(unittest.TestCase):

    def test_trains_on_a_file_of_its_own_in_any_script(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, 'cities.txt')
            write_cities(path)
            result = run_cli('--input', path, '--num_steps', 30, '--eval_docs', 5, '--num_samples', 10,
                             '--val_fraction', 0.1)
        self.assertEqual(result.returncode, 0, result.stderr)
        chars = set(''.join(CITIES))
        self.assertIn(f'GPTConfig(vocab_size={len(chars) + 2},', result.stdout)
        samples = samples_of(result.stdout)
        self.assertEqual(len(samples), 10)
        self.assertTrue(set(''.join(samples)) <= chars, samples)


@unittest.skipUnless(os.name == 'posix', 'needs a pseudo-terminal')
class TestProgress(unittest.TestCase):

    def test_progress_updates_in_place_on_a_terminal(self):
        import pty
        leader, follower = pty.openpty()
        proc = subprocess.Popen([sys.executable, SCRIPT, '--num_steps', '5', '--eval_docs', '3', '--num_samples', '1'],
                                stdout=follower, stderr=subprocess.DEVNULL, cwd=ROOT)
        os.close(follower)
        out = b''
        try:
            while True:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:            # the terminal closed: the program ended
                    break
                if not chunk:
                    break
                out += chunk
            proc.wait(timeout=120)
        finally:
            os.close(leader)
            proc.kill()
        text = out.decode()
        self.assertEqual(proc.returncode, 0)
        for step in range(1, 6):
            self.assertIn(f'\rstep {step}/5 | loss', text)
        self.assertNotIn('\nstep 2/5 | loss', text.replace('\r\n', '\n'))

    def test_progress_is_plain_lines_in_a_pipe(self):
        result = run_cli('--num_steps', 5, '--eval_docs', 3, '--num_samples', 1)
        self.assertNotIn('\r', result.stdout)
        self.assertEqual(len(re.findall(r'^step \d/5 \| loss', result.stdout, re.M)), 5)


class TestSeeInside(unittest.TestCase):

    def test_loss_curve_draws_train_and_validation(self):
        history = {'train': [3.0 - i / 100 for i in range(200)], 'val': [(0, 3.1), (100, 2.2), (200, 0.9)]}
        lines = microgpt.loss_curve(history, width=40, height=8).splitlines()
        self.assertIn('* train, o validation', lines[0])
        plot = lines[1:9]
        self.assertEqual(len(plot), 8)
        self.assertTrue(plot[0].startswith('  3.10 |o'))            # the highest point, top left
        self.assertEqual(plot[-1].rstrip()[-1], 'o')                # the lowest, bottom right
        star_rows = [next(r for r, line in enumerate(plot) if line[8 + c] in '*o') for c in (1, 20, 38)]
        self.assertEqual(star_rows, sorted(star_rows))               # the train loss goes down

    def test_the_curve_is_printed_after_training(self):
        result = run_cli('--num_steps', 30, '--eval_every', 10, '--eval_docs', 10, '--num_samples', 0)
        self.assertIn('loss curve (* train, o validation)', result.stdout)
        self.assertIn('30 steps', result.stdout.split('loss curve')[1])
        plot = [line.split('|')[1] for line in result.stdout.split('loss curve')[1].splitlines() if '|' in line]
        self.assertEqual(''.join(plot).count('o'), 4)           # validation at steps 0, 10, 20, 30

    def test_attention_weights_are_a_distribution_over_the_positions_so_far(self):
        config = microgpt.GPTConfig(6, 8, 4, 2, 8)
        sd = microgpt.init_state_dict(config, seed=1)
        model = microgpt.Model(config, microgpt.Tokenizer('abcd'), sd, microgpt.Adam(microgpt.parameters(sd)))
        weights = microgpt.attention_weights(model, 'abc')
        self.assertEqual([len(layers) for layers in weights], [2] * 4)     # positions x layers
        for pos, layers in enumerate(weights):
            for heads in layers:
                self.assertEqual(len(heads), 4)
                for row in heads:
                    self.assertEqual(len(row), pos + 1)     # causal: only positions so far
                    self.assertAlmostEqual(sum(row), 1.0, places=12)

    def test_each_layers_weights_are_that_layers(self):
        # two layers: scaling layer 1's queries changes layer 1's weights, never layer 0's
        config = microgpt.GPTConfig(6, 8, 4, 2, 8)
        sd = microgpt.init_state_dict(config, seed=1)
        model = microgpt.Model(config, microgpt.Tokenizer('abcd'), sd, microgpt.Adam(microgpt.parameters(sd)))
        before = microgpt.attention_weights(model, 'abca')
        for row in sd['layer1.attn_wq']:
            for p in row:
                p.data *= 3.0
        after = microgpt.attention_weights(model, 'abca')
        for pos in range(1, 5):
            self.assertEqual(after[pos][0], before[pos][0])
            self.assertNotEqual(after[pos][1], before[pos][1])
        # and head h of a layer is the head of numbers h * head_dim to (h + 1) * head_dim:
        # zeroing head 2's slice of layer 0's queries makes that head, and no other, uniform
        for p in sd['layer0.attn_wq'][4]:
            p.data = 0.0
        for p in sd['layer0.attn_wq'][5]:
            p.data = 0.0
        flat = microgpt.attention_weights(model, 'abca')
        for pos in range(1, 5):
            self.assertTrue(all(abs(w - 1 / (pos + 1)) < 1e-12 for w in flat[pos][0][2]))
            self.assertFalse(all(abs(w - 1 / (pos + 1)) < 1e-12 for w in flat[pos][0][1]))

    @slow
    def test_show_attention_draws_a_map_per_layer_and_head(self):
        result = run_cli('--num_steps', 20, '--eval_docs', 0, '--num_samples', 0, '--n_layer', 2,
                         '--show_attention', 'emma')
        self.assertEqual(result.returncode, 0, result.stderr)
        text = result.stdout.split('attention over')[1]
        for layer in range(2):
            for head in range(4):
                self.assertIn(f'layer {layer} head {head}', text)
        block = text.split('layer 0 head 0')[1].split('\n', 1)[1].splitlines()
        self.assertEqual(block[0].strip(), '^emma')
        self.assertEqual([len(line) for line in block[1:6]], [4, 5, 6, 7, 8])   # one more column per row
        self.assertEqual(block[1], ' ^ @')                  # <BOS> can only look at itself

    def test_show_attention_with_an_unknown_character_is_an_error(self):
        result = run_cli('--num_steps', 0, '--num_samples', 0, '--show_attention', 'Émile')
        self.assertEqual(result.returncode, 2)
        self.assertIn("'É'", result.stderr)


if __name__ == '__main__':
    unittest.main()
