"""The learner's workbench: checkpoints, Ctrl-C, any dataset, progress on a
terminal, the loss curve and the attention maps."""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import microgpt
from tests import CITIES, ROOT, SCRIPT, run_cli, write_cities

SHORT = ('--num_steps', 20, '--eval_every', 10, '--eval_docs', 20)


def samples_of(stdout):
    return stdout.split(' ---\n')[-1].splitlines()


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
        }
        for name, text in damaged.items():
            with self.subTest(damage=name):
                with open(self.path, 'w') as f:
                    f.write(text)
                result = run_cli('--load', self.path, '--num_steps', 2, '--save', self.path)
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
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, 'ck.json')
            proc = subprocess.Popen([sys.executable, SCRIPT, '--num_steps', '100000', '--save', path,
                                     '--save_every', '0', '--eval_docs', '10', '--num_samples', '3'],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
            try:
                read_until(proc.stdout, r'^step 5/', timeout=120)
                proc.send_signal(signal.SIGINT)
                out, err = proc.communicate(timeout=120)
            finally:
                proc.kill()
            self.assertEqual(proc.returncode, 0, err)
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
        self.assertEqual(len(weights), 4 * 2 * 4)           # positions x layers x heads
        for i, row in enumerate(weights):
            self.assertEqual(len(row), i // 8 + 1)          # causal: only positions so far
            self.assertAlmostEqual(sum(row), 1.0, places=12)

    def test_show_attention_draws_a_map_per_layer_and_head(self):
        result = run_cli('--num_steps', 20, '--eval_docs', 0, '--num_samples', 0, '--n_layer', 2,
                         '--show_attention', 'emma')
        self.assertEqual(result.returncode, 0, result.stderr)
        text = result.stdout.split('attention over')[1]
        for layer in range(2):
            for head in range(4):
                self.assertIn(f'layer {layer} head {head}', text)
        block = text.split('layer 0 head 0\n')[1].splitlines()
        self.assertEqual(block[0].strip(), '^emma')
        self.assertEqual([len(line) for line in block[1:6]], [4, 5, 6, 7, 8])   # one more column per row
        self.assertEqual(block[1], ' ^ @')                  # <BOS> can only look at itself

    def test_show_attention_with_an_unknown_character_is_an_error(self):
        result = run_cli('--num_steps', 0, '--num_samples', 0, '--show_attention', 'Émile')
        self.assertEqual(result.returncode, 2)
        self.assertIn("'É'", result.stderr)


if __name__ == '__main__':
    unittest.main()
