"""The views inside: backward() node by node, the gradient check, where a name's
gradient goes, the embeddings' map, what each attention head does, and whether a
sample is new. Each must show the engine's own numbers, and fail to look right
when what it shows is wrong."""
import builtins
import contextlib
import io
import math
import re
import unittest
from unittest import mock

import microgpt
from microgpt import Value
from tests import ROOT, run_cli, slow, small_model


def table_rows(table):
    """{node label: (op, value, grad, [(child label, local grad, grad)])} of a backward table,
    in the order the table lists them."""
    rows = {}
    for line in table.splitlines()[2:]:
        m = re.match(r'  (\S+)\s+(\S+(?: \S+)?)\s+(\S+)\s+(\S+)   (.*)$', line)
        if not m or line.startswith('inputs'):
            continue
        passes = re.findall(r'(\S+) \+= (\S+) x (\S+) = (\S+)', m.group(5))
        rows[m.group(1)] = (m.group(2), float(m.group(3)), float(m.group(4)),
                            [(c, float(g), float(x)) for c, g, x, _ in passes])
    return rows


class TestBackwardNodeByNode(unittest.TestCase):

    def test_the_example_can_be_redone_by_hand(self):
        a, b = Value(2.0), Value(-3.0)
        c = a * b + a ** 2
        table = microgpt.backward_table(c, a=a, b=b, c=c)
        rows = table_rows(table)
        self.assertEqual(list(rows), ['c', '#2', '#1'])        # backward()'s order: c, a**2, a*b
        self.assertEqual(rows['c'], ('+', -2.0, 1.0, [('#1', 1.0, 1.0), ('#2', 1.0, 1.0)]))
        self.assertEqual(rows['#2'], ('**2', 4.0, 1.0, [('a', 4.0, 1.0)]))
        self.assertEqual(rows['#1'], ('*', -6.0, 1.0, [('a', -3.0, 1.0), ('b', 2.0, 1.0)]))
        self.assertIn('inputs: a = 2 (grad 1), b = -3 (grad 2)', table)

    def test_the_order_is_the_order_backward_visits_and_the_numbers_are_the_engines(self):
        # on a model-sized graph: each node listed before every node it passes gradient to
        z = [Value(x) for x in (0.3, -1.2, 2.0)]
        p = microgpt.softmax(z)[1] * microgpt.rmsnorm(z)[2]
        table = microgpt.backward_table(p)
        rows = table_rows(table)
        order = list(reversed(microgpt.topological_order(p)))
        self.assertEqual(len(rows), len(order))
        for (label, (op, value, grad, passes)), node in zip(rows.items(), order):
            self.assertEqual(op.split()[0], node.op)
            self.assertAlmostEqual(value, node.data, delta=1e-5 * max(1, abs(node.data)))
            self.assertAlmostEqual(grad, node.grad, delta=1e-5 * max(1, abs(node.grad)))
            self.assertEqual([g for _, g, _ in passes],
                             [float(f'{g:.6g}') for g in node.local_grads])
        seen = set()
        for label, (_, _, _, passes) in rows.items():
            seen.add(label)
            for child, _, _ in passes:
                self.assertNotIn(child, seen, f'{child} listed before {label}, which feeds it')

    def test_typed_computations_are_read_not_run(self):
        with mock.patch.object(builtins, 'eval', side_effect=AssertionError('eval')), \
                mock.patch.object(builtins, 'exec', side_effect=AssertionError('exec')):
            root, names = microgpt.evaluate('a = 2; b = -3; c = a*b + a**2')
            self.assertEqual((root.data, sorted(names)), (-2.0, ['a', 'b', 'c']))
            root, _ = microgpt.evaluate('z1 = 1; z2 = 2; p = softmax(z1, z2)[1]')
            self.assertAlmostEqual(root.data, math.e / (1 + math.e))
        for hostile in ('__import__("os").system("true")', 'a.b', 'lambda: 1', 'import os',
                        '(1).__class__', '[1][0]', 'a = 1; b = a ** a', 'softmax(1, 2)',
                        'open("x")', 'a = 2; b = c', '(' * 300 + '1' + ')' * 300, 'x' * 3000):
            with self.subTest(text=hostile[:40]):
                with self.assertRaises(microgpt.InputError):
                    microgpt.evaluate(hostile)

    def test_the_command_line_shows_the_three_examples_or_a_typed_one(self):
        result = run_cli('--show_backward')
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout.count('>>> '), 3)
        self.assertIn('inputs: z1 = 1 (grad 0.0819251), z2 = 2 (grad -0.022033), '
                      'z3 = 3 (grad -0.059892)', result.stdout)   # p1(1 - p1), -p1 p2, -p1 p3
        typed = run_cli('--show_backward', 'x = 3; y = relu(x) * exp(x)')
        self.assertIn(f'inputs: x = 3 (grad {4 * math.exp(3):.6g})', typed.stdout)   # e^x + x e^x
        bad = run_cli('--show_backward', 'x = 0; y = x ** 0.5')
        self.assertEqual(bad.returncode, 2)
        self.assertIn('slope of a^k (k < 1) at a = 0', bad.stderr)


class TestGradientCheck(unittest.TestCase):

    def setUp(self):
        config, sd = small_model(2, 8, 2, 8, vocab_size=5, seed=4)
        self.model = microgpt.Model(config, microgpt.Tokenizer('abc'), sd,
                                    microgpt.Adam(microgpt.parameters(sd)))

    def test_backward_agrees_with_the_difference_of_the_loss(self):
        report = microgpt.gradient_check(self.model, 'abcab')
        self.assertIn('the gradients agree', report)
        rows = re.findall(r'^  (\S+\[\d+\]\[\d+\]) +(\S+) +(\S+)  (\S+)', report, re.M)
        self.assertEqual(len(rows), 2 * len(self.model.state_dict))   # every matrix
        for _, grad, numeric, gap in rows:
            self.assertLess(float(gap), 1e-6)
            self.assertGreater(abs(float(grad)), 1e-6)                # a real gradient
        self.assertTrue(all(p.grad == 0.0 for p in self.model.adam.params))   # left clean

    def test_a_wrong_derivative_is_caught(self):
        # squared ReLU's slope planted wrong, as a learner might: 3 relu(x) for 2 relu(x)
        def wrong(x):
            r = max(0.0, x.data)
            return Value(r * r, (x,), (3.0 * r,), 'relu^2')
        with mock.patch.object(microgpt, 'squared_relu', wrong):
            report = microgpt.gradient_check(self.model, 'abcab')
        self.assertIn('a gradient is WRONG', report)
        self.assertIn('<- DIFFERENT', report)

    def test_from_the_command_line(self):
        result = run_cli('--num_steps', 0, '--num_samples', 0, '--gradcheck', 'emma')
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("gradient check on 'emma'", result.stdout)
        self.assertIn('the gradients agree', result.stdout)


class TestWhereTheGradientGoes(unittest.TestCase):

    def test_letters_of_the_name_get_the_most_and_every_token_some(self):
        with contextlib.redirect_stdout(io.StringIO()):
            model = microgpt.train_and_sample(input=f'{ROOT}/names.txt', num_steps=40,
                                              num_samples=0, eval_docs=0)
        text = microgpt.gradient_map(model, 'emma')
        lines = text.splitlines()
        wte = lines.index(next(l for l in lines if l.startswith('wte, one row per token')))
        marks, shades, inside = lines[wte + 1][2:], lines[wte + 2][2:], lines[wte + 3][2:30]
        self.assertEqual(marks, '^$abcdefghijklmnopqrstuvwxyz')
        self.assertEqual([m for m, flag in zip(marks, inside) if flag == '*'], list('^$aem'))
        self.assertNotIn(' ', shades)                     # weight tying: every row gets some
        mean_in, mean_out = map(float, re.search(r'mean row gradient: (\S+) for its tokens.*?'
                                                 r'(\d\.\d+) for the others', text).groups())
        self.assertGreater(mean_in, 2 * mean_out)
        # the numbers are the engine's: wte's size equals the norm of backward()'s gradient
        loss = microgpt.doc_loss(model.tokenizer.encode_doc('emma'), model.state_dict, model.config)
        loss.backward()
        norm = math.sqrt(sum(p.grad ** 2 for row in model.state_dict['wte'] for p in row))
        shown = float(re.search(r'^  wte +(\S+)', text, re.M).group(1))
        self.assertAlmostEqual(shown, norm, places=4)
        wpe = lines[lines.index('wpe, one row per position:') + 2]
        self.assertNotIn(' ', wpe[2:7])                  # positions 0-4 read <BOS>emma
        self.assertEqual(wpe[7:18].strip(), '')          # the others get none
        self.assertIn('the others get none', wpe)


class TestWhatTheModelLearned(unittest.TestCase):

    def test_the_embedding_map_places_tokens_by_their_two_main_directions(self):
        # 6 tokens in 4 dimensions: two groups far apart along one axis, a small spread
        # along another: the groups must land at the map's two ends
        config = microgpt.GPTConfig(6, 4, 1, 1, 4)
        sd = microgpt.init_state_dict(config, std=0.0)
        points = [(0, 0.1), (0, -0.1), (5, 0.3), (5, -0.3), (5, 0.0), (0, 0.0)]
        for row, (x, y) in zip(sd['wte'], points):
            row[1].data, row[3].data = x, y
        model = microgpt.Model(config, microgpt.Tokenizer('abcd'), sd, None)
        text = microgpt.embedding_map(model, width=40, height=9)
        grid = [line[3:] for line in text.splitlines()[1:-1]]
        where = {ch: (r, line.index(ch)) for r, line in enumerate(grid) for ch in line if ch != ' '}
        self.assertEqual(sorted(where), sorted('^$abcd'))
        left, right = {'^', '$', 'd'}, {'a', 'b', 'c'}      # tokens 0, 1, 5 vs 2, 3, 4
        cols = {ch: c for ch, (_, c) in where.items()}
        self.assertTrue(max(cols[ch] for ch in left) < 5 and min(cols[ch] for ch in right) > 34
                        or max(cols[ch] for ch in right) < 5 and min(cols[ch] for ch in left) > 34,
                        text)
        self.assertRegex(text.splitlines()[0], r'across, the direction of (9\d|100)% ')

    def test_head_roles_are_measured_from_the_weights(self):
        config = microgpt.GPTConfig(5, 4, 2, 1, 8)
        model = microgpt.Model(config, microgpt.Tokenizer('abc'), microgpt.init_state_dict(config),
                               None)

        def fake_weights(model, text):                 # head 0 reads the previous token,
            out = []                                   # head 1 spreads its weight evenly
            for pos in range(len(text) + 1):
                previous = [1.0 if s == pos - 1 else 0.0 for s in range(pos + 1)]
                even = [1 / (pos + 1)] * (pos + 1)
                out.append([[previous if pos else [1.0], even]])
            return out
        with mock.patch.object(microgpt, 'attention_weights', fake_weights):
            roles = microgpt.head_roles(model, ['abcab', 'cab'])
        self.assertEqual(roles[0, 0], ('the previous token', 1.0))
        self.assertEqual(roles[0, 1][0], 'spread out')

    @slow
    def test_show_attention_labels_each_head_from_the_validation_names(self):
        result = run_cli('--num_steps', 10, '--eval_docs', 0, '--num_samples', 0, '--n_layer', 2,
                         '--show_attention', 'emma')
        self.assertEqual(result.returncode, 0, result.stderr)
        labels = re.findall(r'^layer (\d) head (\d): (.+?) \((\d+)%.*over 200 validation documents',
                            result.stdout, re.M)
        self.assertEqual([(int(l), int(h)) for l, h, *_ in labels],
                         [(l, h) for l in range(2) for h in range(4)])


class TestSamplesNewOrCopied(unittest.TestCase):

    def test_each_sample_says_whether_it_is_new(self):
        args = microgpt.parse_args(['--num_steps', '0', '--eval_docs', '0'])
        model = microgpt.Model(microgpt.GPTConfig(5, 4, 1, 1, 4), microgpt.Tokenizer('abc'), {}, None)
        watch = microgpt.Workbench(args, model, ['abc', 'ca'], ['cab'])
        self.assertEqual([watch.mark(s) for s in ('abc', 'cab', 'bca')],
                         ['   (in the training data)',
                          '   (in the validation data: real, and never trained on)', ''])
        self.assertEqual(watch.novelty(['abc', 'cab', 'bca', 'bb']),
                         '2 of 4 samples are new; 1 in the training data, 1 in the validation data')

    def test_a_run_counts_its_new_samples(self):
        result = run_cli('--num_steps', 40, '--eval_docs', 0, '--num_samples', 30)
        with open(f'{ROOT}/names.txt') as f:
            names = set(f.read().split())
        lines = result.stdout.split('samples (temperature 0.5) ---\n')[1].splitlines()[:30]
        copied = [line for line in lines if line.endswith('data)') or
                  line.endswith('trained on)')]
        self.assertTrue(all(line.split()[0] in names for line in copied))
        self.assertTrue(all(line in ('',) or line not in names for line in lines
                            if line not in copied))
        summary = re.search(r'(\d+) of 30 samples are new', result.stdout)
        self.assertEqual(int(summary.group(1)), 30 - len(copied))


if __name__ == '__main__':
    unittest.main()
