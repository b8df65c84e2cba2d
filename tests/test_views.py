"""The views inside: backward() node by node, the gradient check, where a gradient goes,
the embeddings' map, what each attention head does, attention by hand, the next token's
probabilities, and whether a sample is new. Each must show the engine's own numbers,
and look wrong when what it shows is wrong."""
import builtins
import contextlib
import io
import math
import os
import re
import tempfile
import time
import unittest
from unittest import mock

import microgpt
from microgpt import Value
from tests import ROOT, in_process, run_cli, small_model


def table_rows(table):
    """{node label: (op, value, grad, [(child label, local grad, grad)])} of a backward
    table, in the order it lists them."""
    rows = {}
    for line in table.splitlines()[2:]:
        m = re.match(r'  (\S+)\s+(\S+(?: \S+)?)\s+(\S+)\s+(\S+)   (.*)$', line)
        if m and not line.startswith('inputs'):
            passes = re.findall(r'(\S+) \+= (\S+) x (\S+) = (\S+)', m.group(5))
            rows[m.group(1)] = (m.group(2), float(m.group(3)), float(m.group(4)),
                                [(c, float(g), float(x)) for c, g, x, _ in passes])
    return rows


def trained(num_steps=40, **settings):
    with contextlib.redirect_stdout(io.StringIO()):
        return microgpt.train_and_sample(input=os.path.join(ROOT, 'names.txt'), num_steps=num_steps,
                                         num_samples=0, eval_docs=0, **settings)


def model_of(config, chars, sd=None):
    sd = sd or microgpt.init_state_dict(config, seed=1)
    return microgpt.Model(config, microgpt.Tokenizer(chars), sd)


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

    def test_a_root_already_done_is_shown_not_done_again(self):
        # (README's notebook sequence: c.backward(), then backward_table(c))
        a, b = Value(2.0), Value(-3.0)
        c = a * b + a ** 2
        c.backward()
        self.assertIn('inputs: a = 2 (grad 1), b = -3 (grad 2)', microgpt.backward_table(c, a=a, b=b))
        self.assertEqual((a.grad, b.grad), (1.0, 2.0))

    def test_the_order_is_backwards_and_the_numbers_are_the_engines(self):
        z = [Value(x) for x in (0.3, -1.2, 2.0)]
        p = microgpt.softmax(z)[1] * microgpt.rmsnorm(z)[2]
        rows = table_rows(microgpt.backward_table(p))
        order = list(reversed(microgpt.topological_order(p)))
        self.assertEqual(len(rows), len(order))
        for (label, (op, value, grad, passes)), node in zip(rows.items(), order):
            self.assertEqual(op.split()[0], node.op)
            self.assertAlmostEqual(value, node.data, delta=1e-5 * max(1, abs(node.data)))
            self.assertAlmostEqual(grad, node.grad, delta=1e-5 * max(1, abs(node.grad)))
            self.assertEqual([g for _, g, _ in passes], [float(f'{g:.6g}') for g in node.local_grads])
        seen = set()
        for label, (_, _, _, passes) in rows.items():
            seen.add(label)
            for child, _, _ in passes:
                self.assertNotIn(child, seen, f'{child} listed before {label}, which feeds it')

    def test_the_plus_0_node_of_sum_is_said_where_it_appears(self):
        table = microgpt.backward_table(sum([Value(1.0), Value(2.0)]))
        self.assertIn('+ 0', table)
        self.assertRegex(table.splitlines()[-1], r'\+ 0: sum\(\) starts from 0')

    def test_a_typed_computation_is_only_numbers_names_and_the_engines_ops(self):
        text = microgpt._backward_examples('z1 = 1; z2 = 2; p = softmax(z1, z2)[1]')
        self.assertRegex(text, rf'\n  p +\* +{math.e / (1 + math.e):.6g} ')
        touched = mock.Mock(side_effect=AssertionError('ran'))
        with mock.patch.object(os, 'system', touched), mock.patch.object(builtins, 'open', touched):
            for hostile in ('__import__("os").system("true")', 'a = open("x")', 'a = (1).real',
                            'a = [x for x in (1, 2)]', 'a = exp.__globals__', 'a = (lambda: 1)()',
                            'a = softmax.__code__', 'import os', 'a = {}', 'a = exp(b=1)'):
                with self.subTest(text=hostile):
                    with self.assertRaisesRegex(ValueError, 'use numbers'):
                        microgpt._backward_examples(hostile)
        touched.assert_not_called()

    def test_every_bad_computation_is_one_line_and_quick(self):
        hostile = ['__import__("os").system("true")', 'a.b', 'lambda: 1', 'import os',
                   '(1).__class__', '[1][0]', 'softmax(1, 2)', 'open("x")', 'a = 2; b = c',
                   '(' * 300 + '1' + ')' * 300, 'x' * 3000, 'a = 10**400', 'a = 2**10**10',
                   'a = 2; b = a**(9**9**9)', 'x = -8; y = x ** 0.5', 'x = 0; y = x ** -1',
                   'a = 1e300; b = exp(a)', 'a = 2; b = log(-a)', 'a = 1; b = a / 0',
                   'a = True', 'a = 1; b = softmax(a, a) * 2', 'a = 2; b = a[0]', 'a = "x"',
                   'a = 2; b = a ** a', 'a = 1; a += 1', 'z = softmax(1, 2)[9**9**9]',
                   'a = 2; b = ((a ** 100) ** 100) ** 100', 'a = 9**9**9',
                   'b = __builtins__[0]', 'a = ', '(' * 95 + '1' + ')' * 95,
                   'a = 1; b = a' + ' + a' * 250]             # (1,012 characters)
        for text in hostile:
            with self.subTest(text=text[:40]):
                started = time.monotonic()
                status, out, err = in_process('--show_backward', text)
                self.assertEqual((status, out), (2, ''), err)
                self.assertEqual(len(err.splitlines()), 1, err)
                self.assertLess(time.monotonic() - started, 5)
        self.assertEqual(in_process('--show_backward', 'a = ')[2],
                         "error: cannot compute 'a = ': invalid syntax\n")
        deep = run_cli('--show_backward', '(' * 95 + 'a' + ')' * 95)   # (3.8's parser printed
        self.assertEqual(len(deep.stderr.splitlines()), 1, deep.stderr)   # a line of its own)

    def test_the_command_line_shows_the_three_examples_or_a_typed_one(self):
        status, out, _ = in_process('--show_backward')
        self.assertEqual((status, out.count('>>> ')), (0, 3))
        self.assertRegex(out, r'\n  #2     \*\*2 +4 ')             # a**2 as Part I labels it
        self.assertIn('inputs: z1 = 1 (grad 0.0819251), z2 = 2 (grad -0.022033), '
                      'z3 = 3 (grad -0.059892)', out)               # p1(1 - p1), -p1 p2, -p1 p3
        _, out, _ = in_process('--show_backward', 'x = 3; y = relu(x) * exp(x)')
        self.assertIn(f'inputs: x = 3 (grad {4 * math.exp(3):.6g})', out)   # e^x + x e^x


class TestGradientCheck(unittest.TestCase):

    def setUp(self):
        config, sd = small_model(2, 8, 2, 8, vocab_size=5, seed=4)
        self.model = model_of(config, 'abc', sd)

    def test_backward_agrees_with_the_difference_of_the_loss(self):
        before = [p.data for p in microgpt.parameters(self.model.state_dict)]
        report = microgpt.gradient_check(self.model, 'abcab')
        self.assertIn('the gradients agree', report)
        rows = re.findall(r'^  (\S+\[\d+\]\[\d+\]) +(\S+) +(\S+)  (\S+)', report, re.M)
        self.assertEqual(len(rows), 2 * len(self.model.state_dict))   # every matrix
        for _, grad, numeric, gap in rows:
            self.assertLess(float(gap), 1e-6)
            self.assertGreater(abs(float(grad)), 1e-6)
        self.assertTrue(all(p.grad == 0.0 for p in microgpt.parameters(self.model.state_dict)))   # left clean
        self.assertEqual([p.data for p in microgpt.parameters(self.model.state_dict)], before)    # to the bit

    def test_a_wrong_derivative_is_caught(self):
        for slope in (3.0, 1.0):             # squared ReLU's 2r as a slip of the pen
            def wrong(x):
                r = max(0.0, x.data)
                return Value(r * r, (x,), (slope * r,), 'relu^2')
            with mock.patch.object(microgpt, 'squared_relu', wrong):
                report = microgpt.gradient_check(self.model, 'abcab')
            self.assertIn('a gradient is WRONG', report)
            rows = re.findall(r'^  \S+ +(\S+) +(\S+)  (\S+)  <- DIFFERENT$', report, re.M)
            self.assertTrue(rows, report)
            for grad, numeric, gap in rows:  # relative to the larger of the two
                g, n = float(grad), float(numeric)
                self.assertAlmostEqual(float(gap), abs(g - n) / max(abs(g), abs(n)), delta=
                                       0.05 * float(gap) + 1e-8)

    def test_a_ctrl_c_in_the_check_leaves_every_weight_as_it_was(self):
        # (a notebook's Ctrl-C between the two shifted losses left a weight moved by eps)
        weights, real, calls = [p.data for p in microgpt.parameters(self.model.state_dict)], microgpt.doc_loss, []

        def interrupted(*args):
            calls.append(None)
            if len(calls) == 3:               # (1: the loss; 2: w + eps; 3: w - eps)
                raise KeyboardInterrupt
            return real(*args)
        with mock.patch.object(microgpt, 'doc_loss', interrupted), \
                self.assertRaises(KeyboardInterrupt):
            microgpt.gradient_check(self.model, 'abcab')
        self.assertEqual([p.data for p in microgpt.parameters(self.model.state_dict)], weights)

    def test_from_the_command_line_on_the_first_held_out_document(self):
        status, out, _ = in_process('--num_steps', 0, '--num_samples', 0, '--gradcheck')
        self.assertEqual(status, 0)
        self.assertRegex(out, r"gradient check on '[a-z]+'")
        self.assertIn('the gradients agree', out)


class TestWhereTheGradientGoes(unittest.TestCase):

    def test_the_names_letters_get_the_most_and_every_token_some(self):
        model = trained()
        text = microgpt.gradient_map(model, 'emma')
        lines = text.splitlines()
        wte = next(i for i, line in enumerate(lines) if line.startswith('wte, a row per token'))
        self.assertRegex(lines[wte], r"@ is the largest \(\d\.\d+\), each of '%#\*\+=-:\.' 3\.2 "
                                     r'times less')               # the scale, said
        marks, shades, inside = lines[wte + 1][2:], lines[wte + 2][2:], lines[wte + 3][2:30]
        self.assertEqual(marks, '^$abcdefghijklmnopqrstuvwxyz')
        self.assertEqual([m for m, flag in zip(marks, inside) if flag == '*'], list('^$aem'))
        self.assertNotIn(' ', shades)                     # weight tying: every row gets some
        loss = microgpt.doc_loss(model.tokenizer.encode_doc('emma'), model.state_dict, model.config)
        loss.backward()
        sizes = [math.sqrt(sum(p.grad ** 2 for p in row)) for row in model.state_dict['wte']]
        for size, shade in zip(sizes, shades):          # a shade a half power of ten of size
            self.assertEqual(microgpt._SHADES.index(shade),
                             max(0, 9 + round(2 * math.log10(size / max(sizes)))), shade)
        norm = math.sqrt(sum(s * s for s in sizes))
        self.assertAlmostEqual(float(re.search(r'^  wte +(\S+)', text, re.M).group(1)), norm,
                               places=4)
        wpe = lines[lines.index('wpe, a row per position:') + 2]
        self.assertNotIn(' ', wpe[2:7])                  # positions 0-4: <BOS>, e, m, m, a
        self.assertEqual(wpe[7:18].strip(), '')
        self.assertIn("'emma' reads positions 0-4; the others get none", wpe)

    def test_a_document_longer_than_block_size_marks_only_what_is_read(self):
        config, sd = small_model(1, 4, 2, 4, vocab_size=7, seed=2)
        model = model_of(config, 'abcde', sd)
        text = microgpt.gradient_map(model, 'abcde')         # reads <BOS> a b c, predicts a-d
        marked = next(line for line in text.splitlines() if line.endswith('(^ <BOS>, $ <EOS>)'))
        self.assertEqual(marked[2:9], '* **** ')            # <BOS>, a-d; not <EOS>, not e
        self.assertIn("reads positions 0-3", text)


class TestWhatTheModelLearned(unittest.TestCase):

    def embedding_map_of(self, points, width=40, height=9, shift=0.0):
        config = microgpt.GPTConfig(len(points), 4, 1, 1, 4)
        sd = microgpt.init_state_dict(config, std=0.0)
        for row, (x, y) in zip(sd['wte'], points):
            row[0].data, row[1].data, row[2].data, row[3].data = shift, x + shift, shift, y
        model = model_of(config, 'abcdefgh'[:len(points) - 2], sd)
        return microgpt.embedding_map(model, width=width, height=height)

    def test_the_map_places_tokens_by_their_two_main_directions(self):
        text = self.embedding_map_of([(0, 0.1), (0, -0.1), (5, 0.3), (5, -0.3), (5, 0.0), (0, 0.0)])
        grid = [line[3:] for line in text.splitlines()[1:-1]]
        cols = {ch: line.index(ch) for line in grid for ch in line if ch != ' '}
        self.assertEqual(sorted(cols), sorted('^$abcd'))
        left, right = {'^', '$', 'd'}, {'a', 'b', 'c'}
        self.assertTrue(max(cols[c] for c in left) < 5 and min(cols[c] for c in right) > 34
                        or max(cols[c] for c in right) < 5 and min(cols[c] for c in left) > 34, text)
        self.assertRegex(text.splitlines()[0], r'across, the direction of (9\d|100)% ')

    def test_the_map_does_not_move_when_every_embedding_moves_alike(self):
        # the rows are centred first: an offset common to all is no direction of their spread
        points = [(0, 0.1), (0, -0.1), (5, 0.3), (5, -0.3), (5, 0.0), (0, 0.0)]
        self.assertEqual(self.embedding_map_of(points), self.embedding_map_of(points, shift=40.0))

    def test_tokens_on_one_cell_are_all_shown(self):
        # three tokens on one cell, and two more at the right edge: none hides another
        text = self.embedding_map_of([(0, 0), (0, 0), (0, 0), (9, 1), (9, 1), (4, -1)])
        shown = ''.join(text.splitlines()[1:-1])
        for mark in '^$abcd':
            self.assertEqual(shown.count(mark), 1, text)

    def test_head_roles_are_measured_from_the_weights(self):
        model = model_of(microgpt.GPTConfig(5, 8, 4, 1, 12), 'abc')

        def fake_weights(model, text):       # head 0: the previous token; 1: <BOS>;
            out = []                         # 2: 3 back (itself before that); 3: even
            for pos in range(len(text) + 1):
                def at(s):
                    return [1.0 if i == s else 0.0 for i in range(pos + 1)]
                out.append([[at(max(pos - 1, 0)), at(0), at(pos - 3 if pos >= 3 else pos),
                             [1 / (pos + 1)] * (pos + 1)]])
            return out
        with mock.patch.object(microgpt, '_attention_weights', fake_weights):
            roles = microgpt._head_roles(model, ['abcabcabc', 'cab', 'a', ''])   # (one letter)
        self.assertEqual(roles[0, 0], ('the previous token', 1.0))
        self.assertEqual(roles[0, 1], ('<BOS>', 1.0))
        self.assertEqual(roles[0, 2], ('the token 3 back', 1.0))
        self.assertEqual(roles[0, 3][0], 'spread out')   # from position 2 (at 1, <BOS> and
        shares = [1 / (pos + 1) for n in (9, 3) for pos in range(2, n + 1)]   # 1 back coincide)
        self.assertAlmostEqual(roles[0, 3][1], sum(shares) / len(shares), places=12)

    def test_attention_weights_are_each_heads_over_the_positions_so_far(self):
        model = model_of(microgpt.GPTConfig(6, 8, 4, 2, 8), 'abcd')
        weights = microgpt._attention_weights(model, 'abc')
        self.assertEqual([len(layers) for layers in weights], [2] * 4)     # positions x layers
        for pos, layers in enumerate(weights):
            for heads in layers:
                self.assertEqual([len(row) for row in heads], [pos + 1] * 4)
                for row in heads:
                    self.assertAlmostEqual(sum(row), 1.0, places=12)
        for row in model.state_dict['layer1.attn_wq']:      # layer 1's queries, scaled:
            for p in row:                                   # layer 1's weights change, not 0's
                p.data *= 3.0
        after = microgpt._attention_weights(model, 'abc')
        for pos in range(1, 4):
            self.assertEqual(after[pos][0], weights[pos][0])
            self.assertNotEqual(after[pos][1], weights[pos][1])
        for r in (4, 5):                                    # head 2's slice of layer 0's
            for p in model.state_dict['layer0.attn_wq'][r]:   # queries at 0: head 2, and
                p.data = 0.0                                   # only head 2, reads evenly
        flat = microgpt._attention_weights(model, 'abca')
        for pos in range(1, 5):
            self.assertTrue(all(abs(w - 1 / (pos + 1)) < 1e-12 for w in flat[pos][0][2]))
            self.assertFalse(all(abs(w - 1 / (pos + 1)) < 1e-12 for w in flat[pos][0][1]))

    def test_show_attention_draws_a_map_per_layer_and_head_labelled_from_held_out_names(self):
        status, out, err = in_process('--num_steps', 10, '--eval_docs', 0, '--num_samples', 0,
                                      '--n_layer', 2, '--show_attention', 'emma', '--warmup_steps', 0)
        self.assertEqual(status, 0, err)
        labels = re.findall(r'^layer (\d) head (\d): .*over 200 documents$', out, re.M)
        self.assertEqual([(int(l), int(h)) for l, h in labels], [(l, h) for l in range(2) for h in range(4)])
        block = out.split('layer 0 head 0')[1].split('\n', 1)[1].splitlines()
        self.assertEqual(block[0].strip(), '^emma')
        self.assertEqual([len(line) for line in block[1:6]], [4, 5, 6, 7, 8])
        self.assertEqual(block[1], ' ^ @')                  # <BOS> can only read itself


class TestAttentionByHand(unittest.TestCase):

    def test_every_number_follows_from_the_ones_before_it(self):
        model = trained(20)
        text = microgpt.attention_by_hand(model, 'em')
        d = 4
        for block in text.split('\nposition ')[1:]:
            pos = int(block.split(',')[0])
            scores = [float(x) for x in re.findall(r'score\d+ = q \. k\d+ / 2 = \S+ / 2 = (\S+)', block)]
            weights = [float(x) for x in re.search(r'weights = softmax\(scores\) = \[(.*)\]',
                                                   block).group(1).split(', ')]
            self.assertEqual((len(scores), len(weights)), (pos + 1, pos + 1))
            exps = [math.exp(s) for s in scores]
            for w, e in zip(weights, exps):
                self.assertAlmostEqual(w, e / sum(exps), delta=0.002)
            q = [float(x) for x in re.search(r'q = \[(.*?)\]', block).group(1).split(', ')]
            self.assertEqual(len(q), d)
        values = {int(s): [float(x) for x in v.split(', ')]
                  for s, v in re.findall(r'the cache gets k\d+ = \[.*?\], v(\d+) = \[(.*?)\]', text)}
        last = text.split('\nposition ')[-1]
        out = [float(x) for x in re.search(r'output = .* = \[(.*)\]', last).group(1).split(', ')]
        weights = [float(x) for x in re.search(r'weights = .* = \[(.*)\]', last).group(1).split(', ')]
        for j in range(d):
            self.assertAlmostEqual(out[j], sum(w * values[s][j] for s, w in enumerate(weights)),
                                   delta=0.01)
        real = microgpt._attention_weights(model, 'em')[2][0][0]
        self.assertEqual([round(w, 3) for w in real], weights)   # the engine's weights

    def test_from_the_command_line(self):
        status, out, _ = in_process('--num_steps', 0, '--num_samples', 0, '--attention_by_hand', 'ab')
        self.assertEqual(status, 0)
        self.assertEqual(len(re.findall(r'^position \d, reading', out, re.M)), 3)

    def test_after_an_edit_of_attention_the_views_say_so_before_training(self):
        # (the views read attention's numbers from the graph: after exercise 6's edit, or
        # dot(k_s, q_h) for dot(q_h, k_s), they ended in a traceback after training)
        with open(os.path.join(ROOT, 'microgpt.py'), encoding='utf-8') as f:
            source = f.read()
        for old, new in (('softmax([dot(q_h, k_s)', 'softmax([dot(k_s, q_h)'),
                         ('        attn = attention(rmsnorm(x), keys, values, sd, i, config)\n'
                          '        x = [xj + aj for xj, aj in zip(x, attn)]\n', '')):
            self.assertEqual(source.count(old), 1, old)
            for view in ('--show_attention', '--attention_by_hand'):
                with self.subTest(edit=old[:20], view=view), \
                        tempfile.TemporaryDirectory() as tmp:
                    script = os.path.join(tmp, 'microgpt.py')
                    with open(script, 'w', encoding='utf-8') as f:
                        f.write(source.replace(old, new))
                    result = run_cli('--input', os.path.join(ROOT, 'names.txt'), '--num_steps',
                                     5, view, 'ab', script=script, cwd=tmp)
                    self.assertEqual((result.returncode, result.stdout), (2, ''))
                    self.assertEqual(result.stderr, f"error: {view}: attention's numbers are not "
                                     f"where the view looks for them in gpt()'s graph: was "
                                     f"attention() edited?\n")


class TestTheNextToken(unittest.TestCase):

    def test_the_probabilities_are_the_models_and_samples(self):
        model = trained(30)
        text = microgpt.next_token_table(model, 'em', 0.5, top=27)
        rows = re.findall(r'^  (\S+) +(\d\.\d{3}) #* +(\d\.\d{3})', text, re.M)
        self.assertEqual(len(rows), 27)                       # every token but <BOS>
        cache = [([], [])]
        for pos, token in enumerate([0] + model.tokenizer.encode('em')):
            logits = [z.data for z in microgpt.gpt(token, pos, cache, model.state_dict, model.config)]
        for t, column in ((1.0, 1), (0.5, 2)):               # as sample() draws: z / T, no <BOS>
            exps = {model.tokenizer.tokens[i]: math.exp(z / t) for i, z in enumerate(logits) if i}
            total = sum(exps.values())
            for row in rows:
                self.assertAlmostEqual(float(row[column]), exps[row[0]] / total, delta=0.0006)
        p = [float(row[1]) for row in rows]
        self.assertEqual(p, sorted(p, reverse=True))
        self.assertAlmostEqual(sum(p), 1.0, delta=0.02)

    def test_from_the_command_line(self):
        status, out, _ = in_process('--num_steps', 0, '--num_samples', 0, '--show_next', 'em',
                                    '--temperature', 0.7)
        self.assertEqual(status, 0)
        self.assertIn("the token after 'em': the 10 likeliest of 27", out)
        self.assertIn('T = 0.7', out)


class TestSamplesNewOrCopied(unittest.TestCase):

    def test_each_sample_is_marked_and_each_is_counted(self):
        # a name in both sets is a training name; a name drawn twice counts twice
        model = model_of(microgpt.GPTConfig(5, 4, 1, 1, 4), 'abc')
        plan = microgpt._Plan('x.txt', model, None, ['ab', 'cc'], ['ab', 'ba'], {}, 0, {})
        settings = dict(microgpt.DEFAULTS, num_samples=5)
        out = io.StringIO()
        with mock.patch.object(microgpt, 'sample', side_effect=['ab', 'ba', 'ab', 'abc', 'abc']), \
                contextlib.redirect_stdout(out):
            microgpt._print_samples(model, plan, settings)
        self.assertEqual(out.getvalue().splitlines()[1:], [
            'ab   (in the training data)', 'ba   (in the validation data: real, never trained on)',
            'ab   (in the training data)', 'abc', 'abc',
            '2 of 5 samples are new; 2 in the training data, 1 in the validation data'])

    def test_a_run_marks_exactly_the_samples_found_in_the_data(self):
        status, out, _ = in_process('--num_steps', 40, '--eval_docs', 0, '--num_samples', 30)
        with open(os.path.join(ROOT, 'names.txt')) as f:
            names = set(f.read().split())
        lines = out.split('samples (temperature 0.5) ---\n')[1].splitlines()[:30]
        copied = [line for line in lines if line.endswith(')')]
        self.assertTrue(all(line.split()[0] in names for line in copied))
        self.assertTrue(all(line not in names for line in lines if line not in copied))
        self.assertIn(f'{30 - len(copied)} of 30 samples are new', out)


if __name__ == '__main__':
    unittest.main()
