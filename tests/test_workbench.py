"""The workbench around Part I's loop: checkpoints, nothing lost, an honest resume,
Ctrl-C, progress on a terminal, and the caller's process left as it was found."""
import gc
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
import unittest
from unittest import mock

import microgpt
from tests import CITIES, ROOT, SCRIPT, in_process, run_cli, samples_of, step_by_hand, write_cities

NAMES = os.path.join(ROOT, 'names.txt')
QUIET = ('--eval_docs', 0, '--num_samples', 0, '--warmup_steps', 0)


def names_split(seed=42, val_fraction=0.1):
    with open(NAMES) as f:
        return microgpt.split_docs(microgpt.load_docs(f.read()), val_fraction, random.Random(seed))


class WithFolder(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.path = os.path.join(self.tmp.name, 'good.json')

    def ok(self, *args):
        status, out, err = in_process(*args)
        self.assertEqual(status, 0, err)
        return out

    def refused(self, *args):
        status, out, err = in_process(*args)
        self.assertEqual(status, 2, out[-500:] + err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertNotIn('| loss', out)
        return err

    def save_a_good_checkpoint(self):
        self.ok('--num_steps', 10, '--save', self.path, *QUIET)
        with open(self.path, 'rb') as f:
            return f.read()

    def files(self):
        return sorted(os.listdir(self.tmp.name))


class TestCheckpoints(WithFolder):

    def test_a_saved_model_samples_again_without_training(self):
        trained = self.ok('--num_steps', 20, '--eval_docs', 5, '--num_samples', 5, '--save',
                          self.path, '--warmup_steps', 0)
        self.assertIn(f'saved checkpoint {self.path} (step 20)', trained)
        again = self.ok('--load', self.path, '--num_steps', 0, '--num_samples', 5)
        self.assertNotIn('| loss', again)
        self.assertIn('trained 20 steps', again)
        self.assertEqual(samples_of(again), samples_of(trained))

    def test_the_checkpoint_is_json_with_everything_a_run_goes_on_from(self):
        self.ok('--num_steps', 3, '--n_embd', 8, '--n_head', 2, '--n_layer', 2, '--block_size', 12,
                '--seed', 7, '--batch_size', 2, '--save', self.path, *QUIET)
        with open(self.path) as f:
            ck = json.load(f)
        self.assertEqual(ck['format'], 'microgpt checkpoint 1')
        self.assertEqual(ck['config'], {'n_embd': 8, 'n_head': 2, 'n_layer': 2, 'block_size': 12})
        self.assertEqual(ck['chars'], list('abcdefghijklmnopqrstuvwxyz'))
        self.assertEqual((ck['step'], ck['docs_seen']), (3, 6))
        self.assertEqual(ck['split'], {'seed': 7, 'val_fraction': 0.1, 'docs': ck['split']['docs']})
        self.assertRegex(ck['split']['docs'], r'^[0-9a-f]{16}$')     # (the documents, hashed)
        self.assertEqual(len(ck['state_dict']['layer1.mlp_fc1']), 32)
        n = sum(len(r) for m in ck['state_dict'].values() for r in m)
        self.assertEqual((len(ck['adam_m']), len(ck['adam_v'])), (n, n))
        self.assertEqual(self.files(), ['good.json'])                 # no temporary file left

    def test_loading_restores_every_weight_and_the_adam_state(self):
        config = microgpt.GPTConfig(6, 4, 2, 2, 5)
        sd = microgpt.init_state_dict(config, seed=3)
        adam = microgpt.Adam(microgpt.parameters(sd))
        microgpt.doc_loss([0, 2, 3, 1], sd, config).backward()
        adam.step(0.01)
        microgpt.save_checkpoint(self.path, microgpt.Model(config, microgpt.Tokenizer('abcd'), sd), adam)
        loaded, loaded_adam = microgpt.load_checkpoint(self.path)
        self.assertEqual([p.data for p in loaded_adam.params], [p.data for p in adam.params])
        self.assertEqual(loaded_adam.params, microgpt.parameters(loaded.state_dict))
        self.assertEqual((loaded.tokenizer.chars, loaded.config, loaded_adam.m, loaded_adam.v,
                          loaded_adam.t), (list('abcd'), config, adam.m, adam.v, 1))

    def test_a_resumed_run_goes_on_exactly_as_one_replayed_by_hand(self):
        # from the checkpoint's weights, Adam state (m, v, step) and place in the data,
        # whatever the new batch size: 12 steps of 2 documents, then 7 steps of 3
        more = os.path.join(self.tmp.name, 'more.json')
        self.ok('--num_steps', 12, '--batch_size', 2, '--save', self.path, *QUIET)
        self.ok('--load', self.path, '--num_steps', 7, '--batch_size', 3, '--learning_rate', 0.02,
                '--save', more, *QUIET)
        (model, adam), (train_docs, _) = microgpt.load_checkpoint(self.path), names_split()
        for step in range(7):                 # documents 24 on: where 12 steps of 2 stopped
            batch = [train_docs[24 + 3 * step + b] for b in range(3)]
            step_by_hand(model, adam, batch, microgpt.lr_at(step, 7, 0.02, 0))
        _, want = microgpt.load_checkpoint(more)
        self.assertEqual(want.t, 19)
        self.assertEqual(adam.t, want.t)
        self.assertEqual([p.data for p in adam.params], [p.data for p in want.params])
        self.assertEqual((adam.m, adam.v), (want.m, want.v))
        with open(more) as f:
            self.assertEqual(json.load(f)['docs_seen'], 24 + 21)

    def test_a_copy_made_without_training_goes_on_where_the_original_stopped(self):
        copy = os.path.join(self.tmp.name, 'copy.json')
        self.ok('--num_steps', 5, '--batch_size', 3, '--save', self.path, *QUIET)
        self.ok('--load', self.path, '--num_steps', 0, '--save', copy, *QUIET)
        with open(copy) as f:
            self.assertEqual(json.load(f)['docs_seen'], 15)

    def test_an_older_checkpoint_resumes_at_its_steps_times_the_batch_size(self):
        # (one saved before docs_seen was kept: a run of 10 steps of 4 read 40 documents)
        self.ok('--num_steps', 10, '--batch_size', 4, '--save', self.path, *QUIET)
        with open(self.path) as f:
            ck = json.load(f)
        del ck['docs_seen'], ck['split']
        with open(self.path, 'w') as f:
            json.dump(ck, f)
        more = os.path.join(self.tmp.name, 'more.json')
        self.ok('--load', self.path, '--num_steps', 1, '--batch_size', 4, '--save', more, *QUIET)
        (model, adam), (train_docs, _) = microgpt.load_checkpoint(self.path), names_split()
        step_by_hand(model, adam, train_docs[40:44], microgpt.lr_at(0, 1, 0.01, 0))
        self.assertEqual([p.data for p in adam.params],
                         [p.data for p in microgpt.load_checkpoint(more)[1].params])

    def test_a_continued_run_keeps_the_checkpoints_split(self):
        # (a continued run with another seed split the data anew: a name it trained on was
        # marked "never trained on", and its validation loss counted trained documents)
        self.ok('--num_steps', 2, '--seed', 7, '--save', self.path, *QUIET)
        _, val_docs = names_split(seed=7)
        out = self.ok('--load', self.path, '--num_steps', 0, '--num_samples', 0, '--gradcheck')
        self.assertIn(f'gradient check on {val_docs[0]!r}', out)
        err = self.refused('--load', self.path, '--num_steps', 0, '--val_fraction', 0.2)
        self.assertIn("--val_fraction 0.2 differs from the checkpoint's 0.1", err)
        self.ok('--load', self.path, '--num_steps', 0, '--num_samples', 0, '--val_fraction', 0.1)
        status, _, err = in_process('--load', self.path, '--num_steps', 0, '--num_samples', 1,
                                    '--seed', 8)       # (the split stays; the samples: seed 8)
        self.assertEqual((status, err), (0, "note: the split is the checkpoint's (seed 7); "
                                            "--seed 8 sets the samples\n"))

    def test_a_continued_run_on_other_documents_is_refused(self):
        # (a name added at the top of the file shuffled another split: most held-out names
        # were ones the checkpoint trained on)
        self.ok('--num_steps', 2, '--save', self.path, *QUIET)
        more = os.path.join(self.tmp.name, 'more.txt')
        with open(NAMES) as f, open(more, 'w') as g:
            g.write('zzzextra\n' + f.read())
        for args in (('--num_steps', 1), ('--num_steps', 0, '--save', self.path)):
            with self.subTest(args=args):
                err = self.refused('--load', self.path, '--input', more, *args, *QUIET)
                self.assertIn(f"{more!r} is not the input {self.path!r} trained on", err)
        self.ok('--load', self.path, '--input', more, '--num_steps', 0, '--num_samples', 1)
        self.ok('--load', self.path, '--input', NAMES, '--num_steps', 1, '--save', self.path, *QUIET)

    def test_a_shape_flag_that_contradicts_the_checkpoint_is_an_error(self):
        self.save_a_good_checkpoint()
        for flag, value in (('--n_embd', 32), ('--n_head', 2), ('--n_layer', 2), ('--block_size', 8)):
            with self.subTest(flag=flag):
                err = self.refused('--load', self.path, flag, value, '--num_steps', 0)
                self.assertIn(f"{flag} {value} differs from the checkpoint's", err)
        self.ok('--load', self.path, '--n_embd', 16, '--num_steps', 0, '--num_samples', 1)

    def test_a_damaged_checkpoint_is_a_one_line_error_and_stays_untouched(self):
        good = self.save_a_good_checkpoint().decode()
        ck = json.loads(good)
        first = str(ck['state_dict']['wpe'][0][0])
        damaged = {
            'truncated': good[:len(good) // 2], 'not json': 'hello', 'empty': '',
            'a list': '[1, 2, 3]', 'a number': '7', 'null': 'null', 'a string': '"format"',
            'a row missing': json.dumps(dict(ck, state_dict=dict(ck['state_dict'],
                                                                 wte=ck['state_dict']['wte'][:-1]))),
            'rows that are numbers': json.dumps(dict(ck, state_dict=dict(ck['state_dict'],
                                                                         wte=[1] * 28))),
            'a string weight': json.dumps(dict(ck, state_dict=dict(ck['state_dict'],
                                                                   wpe=[['x'] * 16] * 16))),
            'a NaN weight': good.replace(first, 'NaN', 1),
            'a weight of 10**400': good.replace(first, '1' + '0' * 400, 1),
            'the wrong format': json.dumps(dict(ck, format='something else')),
            'config a list': json.dumps(dict(ck, config=[16, 4, 1, 16])),
            'chars a number': json.dumps(dict(ck, chars=7)),
            'no step': json.dumps({k: v for k, v in ck.items() if k != 'step'}),
            'docs_seen negative': json.dumps(dict(ck, docs_seen=-3)),
            'a split of nothing': json.dumps(dict(ck, split={})),
            'Adam too short': json.dumps(dict(ck, adam_m=ck['adam_m'][:3])),
            'a negative adam_v': json.dumps(dict(ck, adam_v=[-1.0] + ck['adam_v'][1:])),
            'an Adam moment of 10**400': json.dumps(dict(ck, adam_m=[10 ** 400] + ck['adam_m'][1:])),
            'an Adam moment of 1e308': json.dumps(dict(ck, adam_m=[1e308] + ck['adam_m'][1:])),
            'a step of 10**400': json.dumps(dict(ck, step=10 ** 400)),
            'a huge n_layer': json.dumps(dict(ck, config=dict(ck['config'], n_layer=10 ** 9))),
            'JSON nested 10000 deep': '[' * 10000 + ']' * 10000,
            'huge weights': json.dumps(dict(ck, state_dict=dict(ck['state_dict'], wte=[
                [1e300] * 16 for _ in range(28)]))),
            'a line break in chars': json.dumps(dict(ck, chars=sorted(ck['chars'][:-1] + ['\n']))),
        }
        for name, text in damaged.items():
            with self.subTest(damage=name):
                with open(self.path, 'w') as f:
                    f.write(text)
                err = self.refused('--load', self.path, '--num_steps', 2, '--save', self.path,
                                   '--show_attention', 'emma')
                self.assertIn('is damaged or not a microgpt checkpoint', err)
                for internal in ('indices must be', 'not iterable', 'has no attribute',
                                 'NoneType', 'object is not', 'KeyError', '0000000000',
                                 'a object', '--learning_rate'):
                    self.assertNotIn(internal, err)
                with open(self.path) as f:
                    self.assertEqual(f.read(), text)          # nothing written over it
        self.assertIn('not found', self.refused('--load', os.path.join(self.tmp.name, 'nope')))

    def test_a_checkpoint_trained_past_a_billion_steps_loads(self):
        self.save_a_good_checkpoint()
        with open(self.path) as f:
            ck = json.load(f)
        for step, loads in ((3 * 10 ** 9, True), (10 ** 15, True), (10 ** 15 + 1, False)):
            with open(self.path, 'w') as f:
                json.dump(dict(ck, step=step), f)
            if loads:
                self.assertEqual(microgpt.load_checkpoint(self.path)[1].t, step)
            else:
                self.assertRaises(ValueError, microgpt.load_checkpoint, self.path)

    def test_data_with_characters_outside_the_checkpoint_vocabulary_is_an_error(self):
        self.save_a_good_checkpoint()
        other = os.path.join(self.tmp.name, 'other.txt')
        with open(other, 'w', encoding='utf-8') as f:
            f.write('anna\nzoë\n')
        self.assertIn("'ë'", self.refused('--load', self.path, '--input', other, '--num_steps', 2))


class TestNothingLost(WithFolder):
    """Nothing the user made is destroyed or replaced, but by a checkpoint they asked for;
    a save is atomic and leaves no litter; a run that would fail at the end fails at
    the start."""

    def test_save_replaces_only_a_microgpt_checkpoint_or_an_empty_file(self):
        data = os.path.join(self.tmp.name, 'data.txt')
        write_cities(data)
        for name, text in (('script.py', 'print("hello")\n'), ('notes.md', '# notes\n'),
                           ('data.json', '{"format": "something else"}'),
                           ('spaced.txt', ' ' * 64 + '\nmy notes, after 64 spaces\n'),
                           ('spaced.json', '{ "format" : "microgpt checkpoint 1", "my": 1}'),
                           ('indented.md', '  {"format": "microgpt checkpoint 1", begins a '
                                           'checkpoint\n')):
            with self.subTest(name=name):
                target = os.path.join(self.tmp.name, name)
                with open(target, 'w') as f:
                    f.write(text)
                err = self.refused('--num_steps', 0, '--save', target)
                self.assertEqual(err, f"error: --save {target!r} exists and is not a microgpt "
                                      f"checkpoint; refusing to replace it: remove it first, or "
                                      f"save elsewhere\n")
                with open(target) as f:
                    self.assertEqual(f.read(), text)
        self.assertIn('is not a microgpt checkpoint', self.refused('--input', data, '--save', data))
        self.assertIn('not a regular file', self.refused('--save', os.devnull))
        self.assertIn('is a folder', self.refused('--save', self.tmp.name))
        for path in (os.path.join(self.tmp.name, 'outdir') + os.sep, data + os.sep):
            self.assertIn('give the file name', self.refused('--save', path))
        self.assertIn('cannot write checkpoint', self.refused(
            '--save', os.path.join(self.tmp.name, 'missing', 'x.json')))
        with open(data, encoding='utf-8') as f:
            self.assertEqual(f.read().splitlines(), CITIES)
        self.ok('--num_steps', 1, '--save', self.path, *QUIET)
        with mock.patch.object(microgpt.os, "access", return_value=False):   # (chmod 444)
            self.assertIn('is read-only', self.refused('--num_steps', 1, '--save', self.path))
        self.ok('--load', self.path, '--num_steps', 1, '--save', self.path, *QUIET)
        self.assertEqual(microgpt.load_checkpoint(self.path)[1].t, 2)
        empty = os.path.join(self.tmp.name, 'empty.json')          # (mktemp's empty file)
        open(empty, 'w').close()
        self.ok('--num_steps', 0, '--num_samples', 0, '--save', empty)
        self.assertEqual(self.files(), ['data.json', 'data.txt', 'empty.json', 'good.json',
                                        'indented.md', 'notes.md', 'script.py', 'spaced.json', 'spaced.txt'])

    def test_a_file_made_at_the_save_path_during_training_is_not_replaced(self):
        # (the "only replace a checkpoint" check ran once, before training)
        real_train = microgpt.train

        def train_then_someone_writes(*args):
            for step, loss in enumerate(real_train(*args), start=1):
                if step == 3:
                    with open(self.path, 'w') as f:
                        f.write('my notes\n')
                yield loss
        with mock.patch.object(microgpt, 'train', train_then_someone_writes):
            status, out, err = in_process('--num_steps', 4, '--save_every', 2, '--save', self.path,
                                          *QUIET)
        self.assertEqual(status, 1, err)
        self.assertIn('is not a microgpt checkpoint; refusing to replace it', err)
        with open(self.path) as f:
            self.assertEqual(f.read(), 'my notes\n')

    def test_the_file_the_output_goes_to_is_never_replaced(self):
        log = os.path.join(self.tmp.name, 'log.txt')
        with open(log, 'w') as out:
            out.write('yesterday\n')
        with open(log, 'a') as out:
            result = subprocess.run([sys.executable, SCRIPT, '--num_steps', '1', '--save', log],
                                    stdout=out, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        self.assertEqual(result.returncode, 2)
        with open(log) as f:
            self.assertEqual(f.read(), 'yesterday\n')

    def test_nothing_deletes_a_file_this_run_did_not_create(self):
        # (a --load deleted files beside the checkpoint named like its temporary files)
        self.save_a_good_checkpoint()
        others = ['good.json.777777.backup_1.tmp', 'good.json.20240101.snapshot.tmp',
                  f'good.json.{os.getpid()}.abcd1234.tmp', 'good.json.1.efgh5678.tmp']
        for name in others:
            with open(os.path.join(self.tmp.name, name), 'w') as f:
                f.write('keep me')
        self.ok('--load', self.path, '--num_steps', 2, '--save', self.path, *QUIET)
        self.assertEqual(self.files(), sorted(others + ['good.json']))

    def test_a_diverging_run_never_replaces_a_good_checkpoint(self):
        good = self.save_a_good_checkpoint()
        for rate in ('1e308', '1e100'):
            with self.subTest(rate=rate):
                status, _, err = in_process('--load', self.path, '--save', self.path,
                                            '--save_every', 1, '--num_steps', 5,
                                            '--learning_rate', rate, *QUIET)
                self.assertEqual((status, len(err.splitlines())), (2, 1), err)
                self.assertRegex(err, r'^error: the (loss|validation loss|weights|numbers).* at '
                                      r'step \d+: training diverged; try a smaller --learning_rate')
                with open(self.path, 'rb') as f:
                    self.assertEqual(f.read(), good)
                self.assertEqual(self.files(), ['good.json'])

    def test_weights_broken_by_the_last_step_stop_the_run(self):
        # the last update is in no loss: the run must not sample from nan, nor save it
        real_step = microgpt.Adam.step

        def step_then_break(adam, lr):
            real_step(adam, lr)
            adam.params[0].data = float('nan')
        for save in (('--save', self.path), ()):   # (without --save it sampled from them)
            with mock.patch.object(microgpt.Adam, 'step', step_then_break):
                status, out, err = in_process('--num_steps', 1, '--eval_docs', 0, *save,
                                              '--num_samples', 3, '--warmup_steps', 0)
            self.assertEqual(status, 2, save)
            self.assertIn('the weights grew past 1e6 (or to inf or nan) at step 1: training '
                          'diverged', err)
            self.assertNotIn('samples (temperature', out)
            self.assertEqual(self.files(), [])

    def test_a_nan_validation_loss_stops_the_run_naming_its_step(self):
        # the training losses finite, the validation loss nan from step 6 on
        real_lr_at, real_doc_loss, steps = microgpt.lr_at, microgpt.doc_loss, []

        def counted_lr_at(*args):             # (train() asks it once a step)
            if sys._getframe(1).f_code.co_name == 'train':
                steps.append(None)
            return real_lr_at(*args)

        def nan_when_validating(tokens, state_dict, config):
            loss = real_doc_loss(tokens, state_dict, config)
            training = any(f.f_code.co_name == 'train' for f in _frames())
            return loss if training or len(steps) < 6 else loss * float('nan')
        with mock.patch.object(microgpt, 'doc_loss', nan_when_validating), \
                mock.patch.object(microgpt, 'lr_at', counted_lr_at):
            status, out, err = in_process('--num_steps', 9, '--eval_every', 3, '--eval_docs', 2,
                                          '--warmup_steps', 0)
        self.assertEqual((status, err), (2, 'error: the validation loss became nan at step 6: '
                                            'training diverged; try a smaller --learning_rate\n'))
        self.assertNotIn('loss curve', out)

    @unittest.skipUnless(os.name == 'posix', 'needs resource limits')
    def test_a_save_that_fails_late_keeps_the_old_file_and_the_run_goes_on(self):
        import resource

        def small_files_only():                     # as a full disk: writes past 20 kB fail
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
        good = self.save_a_good_checkpoint()
        result = run_cli('--load', self.path, '--num_steps', 2, '--eval_docs', 2, '--num_samples',
                         3, '--save', self.path, '--warmup_steps', 0, preexec_fn=small_files_only)
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertRegex(result.stderr, r"^warning: cannot write checkpoint '.*good.json': File too "
                                        r"large \(the file there is unchanged\); training goes on\n$")
        self.assertEqual(len(samples_of(result.stdout)), 3)
        with open(self.path, 'rb') as f:
            self.assertEqual(f.read(), good)
        self.assertEqual(self.files(), ['good.json'])

    def test_an_interrupted_save_leaves_the_old_checkpoint_byte_for_byte(self):
        good = self.save_a_good_checkpoint()
        model, adam = microgpt.load_checkpoint(self.path)
        for p in adam.params:
            p.data += 1.0
        for stop in (KeyboardInterrupt, OSError(28, 'No space left on device')):
            with self.subTest(stop=stop):
                def cut_short(fd):                 # as the new file is flushed to the disk
                    os.ftruncate(fd, 5000)
                    raise stop
                with mock.patch.object(microgpt.os, 'fsync', cut_short):
                    with self.assertRaises((KeyboardInterrupt, ValueError)):
                        microgpt.save_checkpoint(self.path, model, adam)
                with open(self.path, 'rb') as f:
                    self.assertEqual(f.read(), good)
                self.assertEqual(self.files(), ['good.json'])

    def test_the_new_file_is_written_beside_the_old_then_renamed_over_it(self):
        # (a temporary file in the system's temp folder cannot be renamed across disks)
        self.save_a_good_checkpoint()
        renames, real_replace = [], os.replace
        with mock.patch.object(microgpt.os, 'replace',
                               lambda a, b: renames.append((a, b)) or real_replace(a, b)):
            microgpt.save_checkpoint(self.path, *microgpt.load_checkpoint(self.path))
        (tmp, target), = renames
        self.assertEqual((os.path.dirname(tmp), target), (self.tmp.name, self.path))

    @unittest.skipUnless(hasattr(os, 'symlink') and os.name == 'posix', 'needs POSIX links and modes')
    def test_save_writes_through_a_symlink_and_keeps_the_file_mode(self):
        target, link = os.path.join(self.tmp.name, 'target.json'), os.path.join(self.tmp.name, 'link.json')
        self.save_a_good_checkpoint()
        os.rename(self.path, target)
        os.chmod(target, 0o640)
        os.symlink(target, link)
        self.ok('--num_steps', 2, '--save', link, *QUIET)
        self.assertTrue(os.path.islink(link))
        self.assertEqual(microgpt.load_checkpoint(link)[1].t, 2)
        self.assertEqual(stat.S_IMODE(os.stat(target).st_mode), 0o640)
        old = os.umask(0o022)                  # a new file: the usual mode, as the umask says
        try:
            self.ok('--num_steps', 1, '--save', self.path, *QUIET)
        finally:
            os.umask(old)
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o644)

    def test_a_checkpoint_too_large_to_load_back_is_refused_before_training(self):
        good = self.save_a_good_checkpoint()
        err = self.refused('--n_embd', 320, '--num_steps', 1, '--save', self.path)
        self.assertIn('microgpt loads at most 64 MB', err)
        with open(self.path, 'rb') as f:
            self.assertEqual(f.read(), good)

    def test_room_on_the_disk_is_checked_before_training(self):
        # the new file is written beside the old: the disk needs room for the new one
        good = self.save_a_good_checkpoint()
        size = len(good)
        for free, ok in ((10 * size, True), (size // 3, False)):
            with self.subTest(free=free):
                with mock.patch.object(microgpt.shutil, 'disk_usage', return_value=mock.Mock(free=free)):
                    status, _, err = in_process('--num_steps', 0, '--save', self.path, *QUIET)
                self.assertEqual(status, 0 if ok else 2, err)
                if not ok:
                    self.assertIn('free', err)


def _frames():
    frame = sys._getframe()
    while frame:
        yield frame
        frame = frame.f_back


def read_until(stream, pattern, timeout):
    """Read lines from stream until one matches pattern; return all read."""
    deadline, seen = time.monotonic() + timeout, ''
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen += line
        if re.search(pattern, line):
            return seen
    raise AssertionError(f'{pattern!r} not seen in time; output so far:\n{seen[-2000:]}')


def start(*args):
    return subprocess.Popen([sys.executable, SCRIPT] + [str(a) for a in args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


@unittest.skipUnless(os.name == 'posix', 'needs POSIX signals')
class TestCtrlC(unittest.TestCase):
    """Ctrl-C (or SIGTERM) keeps what was trained: it stops after the step, saves,
    shows the losses so far and samples; a second one, or one after training, stops
    at once. Each ends with a line, and 130 (143)."""

    def test_ctrl_c_stops_after_the_step_saves_reports_and_samples(self):
        self.stop_with(signal.SIGINT)

    def test_sigterm_stops_as_ctrl_c_does(self):
        self.stop_with(signal.SIGTERM)

    def stop_with(self, signum):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, 'ck.json')
            proc = start('--num_steps', 100000, '--save', path, '--save_every', 0, '--eval_docs',
                         10, '--num_samples', 3, '--warmup_steps', 0)
            try:
                seen = read_until(proc.stdout, r'^step +50 /', timeout=120)
                proc.send_signal(signum)
                out, err = proc.communicate(timeout=120)
                out = seen + out
            finally:
                proc.kill()
            self.assertEqual(proc.returncode, 128 + signum, err)
            self.assertNotIn('Traceback', err)
            step = int(re.search(r'interrupted: stopped after step (\d+)', out).group(1))
            self.assertIn(f'step {step:4d} / 100000 | loss', out)
            self.assertIn(f'saved checkpoint {path} (step {step})', out)
            self.assertIn(f'after {step} steps: train loss', out)
            self.assertIn('loss curve', out)
            self.assertEqual(len(samples_of(out)), 3)
            self.assertEqual(os.listdir(tmp), ['ck.json'])
            with open(path) as f:
                self.assertEqual(json.load(f)['step'], step)

    def test_ctrl_c_during_a_long_validation_acts_at_once(self):
        # at step 0, before any training: no step is taken, nothing saved (a step taken
        # then saved over --load's file was a run that went on after it was told to stop)
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        saved = os.path.join(tmp.name, 'ck.json')
        proc = start('--num_steps', 100000, '--eval_docs', 2000, '--val_fraction', 0.5,
                     '--num_samples', 0, '--save', saved)
        try:
            read_until(proc.stdout, r'^\(the workbench', timeout=120)
            time.sleep(0.5)                              # now in the validation of step 0
            started = time.monotonic()
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=120)
        finally:
            proc.kill()
        self.assertLess(time.monotonic() - started, 20)   # (2000 documents: a minute)
        self.assertEqual(proc.returncode, 130, err)
        self.assertNotIn('validation loss', out)
        self.assertIn('interrupted: stopped before step 1', out)
        self.assertNotIn('step    1', out)
        self.assertEqual(os.listdir(tmp.name), [])

    def test_a_second_ctrl_c_stops_at_once(self):
        proc = start('--num_steps', 100000, '--eval_docs', 0, '--batch_size', 64,
                     '--num_samples', 1000000)
        try:
            read_until(proc.stdout, r'^step +1 /', timeout=120)
            proc.send_signal(signal.SIGINT)
            time.sleep(0.1)                      # (two at once would arrive as one)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
        self.assertEqual(proc.returncode, 130, err)      # (in the minute: a million samples
        self.assertEqual(err.strip().splitlines()[-1], 'interrupted')   # take many more)
        self.assertIn('\ninterrupted\n', err)        # (on a line of its own, after ^C)
        self.assertNotIn('Traceback', err)

    def test_a_signal_while_sampling_stops_at_once_and_says_so(self):
        # (SIGTERM while sampling ended the run with 143 and said nothing)
        for signum in (signal.SIGINT, signal.SIGTERM):
            with self.subTest(signal=signum):
                proc = start('--num_steps', 0, '--num_samples', 1000000)
                try:
                    read_until(proc.stdout, r'samples \(temperature', timeout=120)
                    proc.stdout.readline()
                    proc.send_signal(signum)
                    out, err = proc.communicate(timeout=60)
                finally:
                    proc.kill()
                self.assertEqual(proc.returncode, 128 + signum, err)
                self.assertEqual(err.strip().splitlines()[-1], 'interrupted')


class TestProgress(unittest.TestCase):

    @staticmethod
    def on_a_terminal(*args):
        """(exit status, all it wrote, the lines the terminal shows) of a run on a pty."""
        import pty
        leader, follower = pty.openpty()
        proc = subprocess.Popen([sys.executable, SCRIPT, *map(str, args)], stdout=follower,
                                stderr=follower, cwd=ROOT)
        os.close(follower)
        out = b''
        try:
            while True:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:                  # the terminal closed: the program ended
                    break
                if not chunk:
                    break
                out += chunk
            proc.wait(timeout=120)
        finally:
            os.close(leader)
            proc.kill()
        text, screen = out.decode().replace('\r\n', '\n'), []
        for line in text.split('\n'):           # '\r' goes back to the line's start
            shown = ''
            for part in line.split('\r'):
                shown = part + shown[len(part):]
            screen.append(shown.rstrip())
        return proc.returncode, text, screen

    @unittest.skipUnless(os.name == 'posix', 'needs a pseudo-terminal')
    def test_progress_updates_in_place_on_a_terminal_and_keeps_its_lines_apart(self):
        status, text, screen = self.on_a_terminal('--num_steps', 60, '--eval_every', 7,
                                                  '--eval_docs', 3, '--num_samples', 1)
        self.assertEqual(status, 0)
        for step in range(1, 61):
            self.assertIn(f'\rstep {step:4d} / 60 | loss', text)
        # (a validation line was glued to a step's): each starts a line, or writes over
        # the step's line from its start
        self.assertEqual(re.findall(r'[^\n\r]validation loss \d\.\d+ \(step', text), [])
        self.assertEqual(len(re.findall(r'[\n\r]validation loss \d\.\d+ \(step', text)), 10)
        self.assertEqual([line for line in screen if '/ 60 |' in line
                          and not line.startswith('step')], [], screen)

    @unittest.skipUnless(os.name == 'posix', 'needs a pseudo-terminal')
    def test_a_run_that_stops_on_an_error_leaves_no_step_under_it(self):
        status, text, screen = self.on_a_terminal('--num_steps', 60, '--learning_rate', 1e200,
                                                  '--eval_docs', 3)
        self.assertEqual(status, 2)
        self.assertRegex(text, r'\r {70}\rerror: ')    # (the open step's line blanked first)
        self.assertEqual(screen[-2], 'error: the loss became nan at step 3: training diverged; '
                                     'try a smaller --learning_rate', screen)

    def test_a_pipe_gets_the_lines_that_stay_as_train_and_sample_prints_them(self):
        status, out, _ = in_process('--num_steps', 120, '--eval_docs', 0, '--num_samples', 0)
        self.assertEqual(status, 0)
        self.assertNotIn('\r', out)
        self.assertEqual(re.findall(r'^step +(\d+) / 120 \| loss \d\.\d{4} \| lr \d\.\de-0\d \| '
                                    r'\d+ ms$', out, re.M), ['1', '50', '100', '120'])

    def test_the_loss_curve_draws_the_running_mean_and_the_validation(self):
        history = {'train': [3.0 - i / 100 for i in range(200)], 'val': [(0, 3.1), (100, 2.2), (200, 0.9)]}
        lines = microgpt._loss_curve(history, width=40, height=8).splitlines()
        self.assertIn('running mean of 20 steps', lines[0])
        plot = lines[1:9]
        self.assertTrue(plot[0].startswith('  3.10 |o'))            # the highest point, top left
        self.assertEqual(plot[-1].rstrip()[-1], 'o')                # the lowest, bottom right
        rows = [next(r for r, line in enumerate(plot) if line[8 + c] in '*o') for c in (1, 20, 38)]
        self.assertEqual(rows, sorted(rows))
        lines = microgpt._loss_curve({'train': [3.0] * 99 + [0.0], 'val': []}, 10, 4).splitlines()
        self.assertEqual(lines[4].split('|')[0].strip(), '2.70')   # a mean of 10, not the 0.0

    def test_an_interrupted_run_says_which_step_its_validation_loss_is_from(self):
        history = {'train': [3.9, 3.5, 3.1, 3.0, 2.9], 'val': [(0, 3.4976)], 'ms': [1.0] * 5}
        self.assertIn('validation loss 3.4976 (at step 0),', microgpt._summary(history))


class TestTheCallersProcess(unittest.TestCase):
    """main() leaves the process as it found it: a notebook, python -i, IPython."""

    def state(self):
        return (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM), gc.isenabled(),
                sys.stdout, sys.stderr, os.umask(os.umask(0o022)))

    def test_signal_handlers_gc_stdout_and_umask_are_restored(self):
        before = self.state()
        for args in (('--num_steps', 2, '--eval_docs', 1, '--num_samples', 1, '--warmup_steps', 0),
                     ('--n_embd', 10), ('--help',), ('--show_backward',)):
            with self.subTest(args=args):
                in_process(*args)
                self.assertEqual(self.state(), before)
        with mock.patch.object(microgpt, 'sample', side_effect=KeyboardInterrupt):
            self.assertEqual(in_process('--num_steps', 1, *QUIET[:2])[0], 130)
        self.assertEqual(self.state(), before)
        gc.disable()                         # (a caller's gc, off, stays off)
        try:
            in_process('--num_steps', 1, *QUIET)
            self.assertFalse(gc.isenabled())
        finally:
            gc.enable()

    @unittest.skipUnless(os.name == 'posix', 'needs POSIX signals')
    def test_after_python_i_ctrl_c_still_interrupts(self):
        # (after `python3 -i microgpt.py`, Ctrl-C no longer stopped anything)
        result = subprocess.run([sys.executable, '-i', SCRIPT, '--show_backward'],
                                input='import signal\nprint(signal.getsignal(signal.SIGINT) is '
                                      'signal.default_int_handler)\n', capture_output=True,
                                text=True, cwd=ROOT, timeout=60,
                                env=dict(os.environ, PYPY_GC_NURSERY='4MB'))
        printed = result.stdout.replace('>>>>', '').split()   # (PyPy's prompts go to stdout)
        self.assertEqual(printed[-1], 'True', result.stderr)
        bad = subprocess.run([sys.executable, '-i', SCRIPT, '--n_embd', '10'], input='',
                             capture_output=True, text=True, cwd=ROOT, timeout=60)
        self.assertEqual(bad.stderr.splitlines()[0],      # (then a SystemExit traceback)
                         'error: --n_embd 10 is not divisible by --n_head 4')
        self.assertNotIn('SystemExit', bad.stderr)


class TestAnyDataset(unittest.TestCase):

    def test_trains_on_a_file_of_its_own_in_any_script(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, 'cities.txt')
            write_cities(path)
            status, out, err = in_process('--input', path, '--num_steps', 30, '--eval_docs', 5,
                                          '--num_samples', 10)
        self.assertEqual(status, 0, err)
        chars = set(''.join(CITIES))
        self.assertIn(f'GPTConfig(vocab_size={len(chars) + 2},', out)
        samples = samples_of(out)
        self.assertEqual(len(samples), 10)
        self.assertTrue(set(''.join(samples)) <= chars, samples)

    def test_a_byte_order_mark_is_not_part_of_any_document(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, 'bom.txt')
            with open(path, 'wb') as f:
                f.write('\ufeffanna\n\ufeffbob\n'.encode('utf-8'))   # (two files joined)
            status, out, _ = in_process('--input', path, '--num_steps', 1, '--num_samples', 0,
                                        '--val_fraction', 0)
        self.assertEqual(status, 0)
        self.assertIn('vocab_size=6', out)              # a, n, b, o and the two specials

    def test_control_characters_in_the_data_are_shown_escaped(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, 'controls.txt')
            with open(path, 'wb') as f:
                f.write(b'\x1b[31mred\nbell\x07\nplain\n' * 20)
            status, out, err = in_process('--input', path, '--num_steps', 5, '--eval_docs', 2,
                                          '--num_samples', 3, '--prompt', '\x1b[3')
        self.assertEqual(status, 0, err)
        self.assertTrue(all(s.startswith('\\x1b[3') for s in samples_of(out)), out)
        self.assertNotIn('\x1b', out)
        self.assertNotIn('\x07', out)

    def test_a_long_line_is_read_as_the_model_reads_it(self):
        # one 2 MB line: read for its first block_size characters, as doc_loss() does
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, 'big.txt')
            with open(path, 'wb') as f:
                f.write(b'x' * (2 * 2 ** 20) + b'\nanna\nbob\n')
            status, _, err = in_process('--input', path, '--num_steps', 2, '--batch_size', 16,
                                        '--eval_docs', 1, '--num_samples', 1, '--val_fraction', 0,
                                        '--warmup_steps', 0)
        self.assertEqual((status, err), (0, ''))


class TestBench(unittest.TestCase):

    def test_the_bench_times_the_steps_and_counts_the_graph(self):
        status, out, err = in_process('--bench', '--num_steps', 12, '--warmup_steps', 0)
        self.assertEqual(status, 0, err)
        self.assertNotIn('samples', out)
        self.assertRegex(out, r'ms per step: median \d+\.\d\d \(min \d+\.\d\d, max \d+\.\d\d\)')
        nodes, edges = map(int, re.search(r'graph per step: (\d+) nodes, (\d+) edges', out).groups())
        self.assertTrue(3000 < nodes < 40000 and 40000 < edges < 500000, (nodes, edges))

    def test_the_peak_memory_is_said_in_megabytes(self):
        # (Linux gives kilobytes: the report once said 1024 times too little)
        if sys.platform == 'darwin':
            self.skipTest('macOS gives bytes')
        try:
            import resource
        except ImportError:
            self.skipTest('needs resource')
        usage = mock.Mock(ru_maxrss=204800)
        with mock.patch.object(resource, 'getrusage', return_value=usage):
            _, out, _ = in_process('--bench', '--num_steps', 1)
        self.assertIn('peak memory: 200.0 MB', out)


if __name__ == '__main__':
    unittest.main()
