"""Every gradient microgpt computes, checked against central finite differences
and against an independent engine built from plain binary ops (reference.py)."""
import itertools
import math
import random
import unittest

import microgpt
from microgpt import Value
from tests import small_model, weights_of
from tests.reference import RefValue, SlotValue, ref_doc_loss, ref_gpt, to_ref

EPS = 1e-6


def assert_close(test, got, want, rel, msg=''):
    test.assertLessEqual(abs(got - want), rel * max(1.0, abs(want)), f'{msg}: got {got!r}, want {want!r}')


def check_op(test, f, inputs, rel=1e-6):
    """f(*Values) -> Value. Its gradient for each input must match
    (f(x + eps) - f(x - eps)) / 2eps, with f evaluated on the same op."""
    xs = [Value(x) for x in inputs]
    out = f(*xs)
    out.backward()
    for i, x in enumerate(inputs):
        up = list(inputs); up[i] = x + EPS
        down = list(inputs); down[i] = x - EPS
        numeric = (f(*map(Value, up)).data - f(*map(Value, down)).data) / (2 * EPS)
        assert_close(test, xs[i].grad, numeric, rel, f'd/dx{i}')
    return out


class TestValueOps(unittest.TestCase):
    """Each op: the value it computes, and its gradient against finite differences."""

    def test_each_op_value_and_gradient(self):
        a, b = 1.3, -0.7
        cases = {  # name: (f on Values, the same formula on floats)
            'add': (lambda x, y: x + y, a + b),
            'sub': (lambda x, y: x - y, a - b),
            'mul': (lambda x, y: x * y, a * b),
            'div': (lambda x, y: x / y, a / b),
            'neg': (lambda x, y: -x + y, -a + b),
            'pow int': (lambda x, y: x ** 3 + y ** 2, a ** 3 + b ** 2),
            'pow float': (lambda x, y: x ** 0.5 * y, a ** 0.5 * b),
            'pow negative': (lambda x, y: x ** -2 + y, a ** -2 + b),
            'exp': (lambda x, y: x.exp() * y.exp(), math.exp(a) * math.exp(b)),
            'log': (lambda x, y: x.log() + (-y).log(), math.log(a) + math.log(-b)),
            'relu': (lambda x, y: x.relu() + y.relu() * 3, max(a, 0) + 3 * max(b, 0)),
        }
        for name, (f, expected) in cases.items():
            with self.subTest(op=name):
                out = check_op(self, f, [a, b])
                self.assertAlmostEqual(out.data, expected, places=12)

    def test_constants_on_either_side(self):
        a = 0.9
        cases = {
            'x + 2': (lambda x: x + 2, a + 2), '2 + x': (lambda x: 2 + x, 2 + a),
            'x - 2': (lambda x: x - 2, a - 2), '2 - x': (lambda x: 2 - x, 2 - a),
            'x * 3': (lambda x: x * 3, a * 3), '3 * x': (lambda x: 3 * x, 3 * a),
            'x / 4': (lambda x: x / 4, a / 4), '4 / x': (lambda x: 4 / x, 4 / a),
        }
        for name, (f, expected) in cases.items():
            with self.subTest(expr=name):
                out = check_op(self, f, [a])
                self.assertAlmostEqual(out.data, expected, places=12)

    def test_a_value_used_several_times_in_one_expression(self):
        # the gradient from every use must add up: d(a*a)/da = 2a, and so on
        cases = {
            'a * a': lambda x, y: x * x,
            'a + a': lambda x, y: x + x,
            'a * b * a': lambda x, y: x * y * x,
            'a / a + b - b * a': lambda x, y: x / x + y - y * x,
            'shared subexpression': lambda x, y: (lambda s: s * s + s.exp())(x * y + x),
        }
        for name, f in cases.items():
            with self.subTest(expr=name):
                check_op(self, f, [0.8, -1.1])
        a = Value(3.0)
        (a * a).backward()
        self.assertEqual(a.grad, 6.0)

    def test_relu_gradient_is_zero_below_zero_and_at_zero(self):
        # at exactly 0 the derivative is a convention: 0, as PyTorch's relu has it
        for x, want in ((-2.0, 0.0), (0.0, 0.0), (-0.0, 0.0), (1e-300, 1.0)):
            with self.subTest(x=x):
                v = Value(x)
                v.relu().backward()
                self.assertEqual(v.grad, want)

    def test_a_negative_number_to_a_fractional_power_is_an_error_not_a_complex_number(self):
        with self.assertRaisesRegex(TypeError, 'complex'):
            Value(-8.0) ** (1 / 3)
        self.assertEqual((Value(-2.0) ** 3).data, -8.0)          # whole powers are fine

    def test_powers_of_zero_are_an_error_where_their_slope_is_undefined(self):
        # (0 ** 0 has the slope 0 * 0 ** -1: no number, an error rather than a wrong one)
        self.assertEqual((Value(0.0) ** 2).local_grads, (0.0,))
        with self.assertRaises(ZeroDivisionError):
            Value(0.0) ** 0
        with self.assertRaises(ZeroDivisionError):             # d/da a^0.5 = 0.5 / 0 at a = 0
            Value(0.0) ** 0.5
        with self.assertRaises(ZeroDivisionError):             # as 3 / 0 is
            Value(3) / Value(0)
        with self.assertRaises(ZeroDivisionError):
            Value(3) / 0

    def test_a_value_is_a_number(self):
        self.assertEqual(Value(3).data, 3.0)
        self.assertIs(type(Value(3).data), float)
        for bad in ('ab', [1.0], 1j, None):
            with self.subTest(data=bad):
                with self.assertRaises((TypeError, ValueError)):
                    Value(bad) * 2

    def test_gradients_add_up_until_adam_sets_them_back_to_zero(self):
        # what backward()'s docstring says: a second backward() adds every path again
        a, b = Value(-1.0), Value(-3.0)
        c = a * b + a ** 2
        c.backward()
        self.assertEqual((a.grad, b.grad), (-5.0, -1.0))
        (a * b + a ** 2).backward()                             # computed again: added
        self.assertEqual((a.grad, b.grad), (-10.0, -2.0))        # as in PyTorch
        microgpt.Adam([a, b]).step(0.1)
        self.assertEqual((a.grad, b.grad), (0.0, 0.0))

    def test_each_node_names_the_op_that_made_it(self):
        a, b = Value(2.0), Value(3.0)
        ops = [(a + b).op, (a + 1).op, (a * b).op, (a ** 2).op, (a ** -0.5).op, a.exp().op,
               a.log().op, a.relu().op, a.op, microgpt.dot([a], [b]).op,
               microgpt.squared_relu(a).op, microgpt.cross_entropy([a, b], 0).op]
        self.assertEqual(ops, ['+', '+', '*', '**2', '**-0.5', 'exp', 'log', 'relu', '', 'dot',
                               'relu^2', 'xent'])

    def test_overflow_is_what_the_interpreters_floats_do(self):
        # CPython raises OverflowError for 1e200 ** 2, PyPy gives inf; a Value does the same
        # (the command line reports either as a diverging run: see test_cli)
        try:
            expected = 1e200 ** 2
        except OverflowError:
            with self.assertRaises(OverflowError):
                Value(1e200) ** 2
        else:
            self.assertEqual((Value(1e200) ** 2).data, expected)
        self.assertEqual((Value(1e200) * 1e200).data, math.inf)  # as 1e200 * 1e200 is


class TestModelOps(unittest.TestCase):
    """Each op the model is built from equals its textbook formula, and its gradient
    matches finite differences: the fused ones (linear, squared_relu, cross_entropy,
    whose local gradients are derived by hand) and the composed ones (softmax,
    rmsnorm, whose gradients backward() finds from Value's own ops)."""

    def setUp(self):
        rng = random.Random(7)
        self.xs = [rng.uniform(-2, 2) for _ in range(6)]

    def test_dot(self):
        f = lambda *v: microgpt.dot(list(v[:3]), list(v[3:]))
        out = check_op(self, f, self.xs)
        self.assertAlmostEqual(out.data, sum(a * b for a, b in zip(self.xs[:3], self.xs[3:])), places=12)
        self.assertEqual(len(out.children), 6)                 # one node, 2n children

    def test_x_dot_x_counts_both_uses_of_each_x(self):
        # rmsnorm's sum of squares: each x_j is a child twice, so d/dx_j = 2 x_j
        f = lambda *v: microgpt.dot(list(v), list(v))
        check_op(self, f, self.xs[:4])

    def test_a_linear_layer_is_one_dot_product_per_row(self):
        rows, x = [[Value(a) for a in self.xs[:3]], [Value(a) for a in self.xs[3:]]], \
            [Value(a) for a in (0.5, -1.5, 2.0)]
        got, want = microgpt.linear(x, rows), [microgpt.dot(row, x) for row in rows]
        self.assertEqual([(v.data, v.children, v.local_grads) for v in got],
                         [(v.data, v.children, v.local_grads) for v in want])

    def test_linear(self):
        def f(*v):                      # a 2x3 matrix times a 3-vector, weighted so both rows matter
            y = microgpt.linear(list(v[:3]), [list(v[3:6]), list(v[:3])])
            return y[0] * 1.5 + y[1] * -0.5
        check_op(self, f, self.xs)

    def test_squared_relu(self):
        for x in (1.7, -0.4):
            with self.subTest(x=x):
                out = check_op(self, microgpt.squared_relu, [x])
                plain, fused = Value(x), Value(x)
                (plain.relu() ** 2).backward()
                microgpt.squared_relu(fused).backward()
                self.assertEqual((out.data, fused.grad), ((plain.relu() ** 2).data, plain.grad))

    def test_softmax(self):
        z = self.xs[:4]
        exps = [math.exp(x) for x in z]
        for i in range(4):
            with self.subTest(output=i):
                out = check_op(self, lambda *v: microgpt.softmax(list(v))[i], z)
                self.assertAlmostEqual(out.data, exps[i] / sum(exps), places=12)

    def test_softmax_of_huge_logits_does_not_overflow(self):
        probs = microgpt.softmax([Value(1e308), Value(0.0), Value(-1e308)])
        self.assertEqual([p.data for p in probs], [1.0, 0.0, 0.0])

    def test_cross_entropy(self):
        z = self.xs[:5]
        for target in range(5):
            with self.subTest(target=target):
                out = check_op(self, lambda *v: microgpt.cross_entropy(list(v), target), z)
                want = -math.log(math.exp(z[target]) / sum(math.exp(x) for x in z))
                self.assertAlmostEqual(out.data, want, places=12)

    def test_cross_entropy_of_huge_logits_is_finite(self):
        loss = microgpt.cross_entropy([Value(1e300), Value(-1e300)], 1)
        self.assertEqual(loss.data, 2e300)

    def test_rmsnorm(self):
        x = self.xs[:4]
        rms = math.sqrt(sum(v * v for v in x) / 4 + 1e-5)
        for i in range(4):
            with self.subTest(output=i):
                out = check_op(self, lambda *v: microgpt.rmsnorm(list(v))[i], x)
                self.assertAlmostEqual(out.data, x[i] / rms, places=12)


class TestBackward(unittest.TestCase):

    def test_a_chain_of_100000_ops_does_not_hit_the_recursion_limit(self):
        x = Value(1.0)
        y = x
        for _ in range(50000):
            y = y * 1.0 + 0.0           # 100,000 nodes deep
        y.backward()
        self.assertEqual(x.grad, 1.0)

    def test_every_node_is_visited_once_in_a_diamond(self):
        # a is reached along two paths; its gradient must count each path once
        a = Value(2.0)
        b, c = a * 3.0, a * 5.0
        (b * c).backward()              # d(15 a^2)/da = 30 a
        self.assertEqual(a.grad, 60.0)

    def test_topological_order_puts_each_node_after_its_children(self):
        a, b = Value(1.0), Value(2.0)
        c = a * b
        d = c + a
        e = d * c
        order = microgpt.topological_order(e)
        self.assertEqual(order, [c, d, e])
        # and on the model's graph: every node after each of its children, each once,
        # every node with children that the loss depends on there
        config, sd = small_model(2, 8, 2, 5)
        loss = microgpt.doc_loss([0, 2, 3, 4, 1], sd, config)
        order = microgpt.topological_order(loss)
        place = {id(node): i for i, node in enumerate(order)}
        self.assertEqual(len(place), len(order))
        for node in order:
            for child in node.children:
                if child.children:
                    self.assertLess(place[id(child)], place[id(node)])
        self.assertIs(order[-1], loss)
        reached, stack = set(), [loss]
        while stack:
            for child in stack.pop().children:
                if child.children and id(child) not in reached:
                    reached.add(id(child))
                    stack.append(child)
        self.assertEqual(reached | {id(loss)}, set(place))


class TestNumericalGrad(unittest.TestCase):
    """Part I's numerical_grad: what its docstring promises, and that it catches a wrong
    local gradient."""

    def test_the_worked_example_agrees_with_backward(self):
        a, b = Value(2), Value(-3)
        f = lambda: a * b + a ** 2
        f().backward()
        for x, want in ((a, 1.0), (b, 2.0)):
            self.assertEqual(x.grad, want)
            self.assertAlmostEqual(microgpt.numerical_grad(f, x), want, delta=1e-9)

    def test_the_nudged_value_is_left_exactly_as_it_was(self):
        x = Value(0.1)
        microgpt.numerical_grad(lambda: x * x, x)
        self.assertEqual(x.data, 0.1)

    def test_the_fused_ops_agree_with_their_plain_forms_as_its_docstring_says(self):
        rng = random.Random(3)
        z = [Value(rng.gauss(0, 1)) for _ in range(5)]
        for fused, plain in ((lambda: microgpt.cross_entropy(z, 2), lambda: -microgpt.softmax(z)[2].log()),
                             (lambda: microgpt.squared_relu(z[0]) * z[1],
                              lambda: z[0].relu() ** 2 * z[1])):
            for f in (fused, plain):
                for v in z:
                    v.grad = 0.0
                f().backward()
                for v in z:
                    self.assertAlmostEqual(v.grad, microgpt.numerical_grad(f, v), delta=1e-8)

    def test_the_files_examples_run_as_written(self):
        # python -m doctest microgpt.py: numerical_grad's, dot's, linear's, squared_relu's
        # and cross_entropy's >>> examples, each printing what it says
        import contextlib, doctest, io
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            failed, tried = doctest.testmod(microgpt)
        self.assertEqual(failed, 0, out.getvalue())
        self.assertGreaterEqual(tried, 10)

    def test_a_wrong_local_gradient_shows(self):
        x = Value(1.5)
        wrong = lambda: Value(x.data ** 2, (x,), (x.data,))     # d(x^2)/dx is 2x, not x
        wrong().backward()
        self.assertAlmostEqual(x.grad, 1.5)
        self.assertAlmostEqual(microgpt.numerical_grad(wrong, x), 3.0, delta=1e-8)


class TestWholeModel(unittest.TestCase):

    def test_doc_loss_gradient_of_every_parameter_matches_finite_differences(self):
        config, sd = small_model(n_layer=2, n_embd=4, n_head=2, block_size=5)
        tokens = [0, 3, 5, 2, 6, 1]
        loss = microgpt.doc_loss(tokens, sd, config)
        loss.backward()
        params = microgpt.parameters(sd)
        self.assertTrue(all(p.grad != 0 for p in params[:4]), 'the chosen weights give real gradients')
        worst = 0.0
        for p in params:
            x = p.data
            p.data = x + EPS
            up = microgpt.doc_loss(tokens, sd, config).data
            p.data = x - EPS
            down = microgpt.doc_loss(tokens, sd, config).data
            p.data = x
            numeric = (up - down) / (2 * EPS)
            err = abs(p.grad - numeric) / max(abs(numeric), 1e-3)
            worst = max(worst, err)
            self.assertLess(err, 1e-6, f'parameter gradient {p.grad!r} vs finite difference {numeric!r}')
        self.assertGreater(len(params), 300)

    def test_matches_the_binary_op_reference_to_1e_9(self):
        # the fused engine and the one-node-per-op engine: same loss, same gradients
        configs = [  # n_layer, n_embd, n_head, block_size, tokens
            (1, 16, 4, 16, [0, 4, 2, 6, 3, 1]),
            (2, 8, 2, 4, [0, 2, 3, 4, 5, 6, 2, 1]),      # cropped to block_size + 1
            (3, 6, 3, 8, [0, 5, 1]),
            (1, 4, 1, 3, [0, 2, 2, 2, 2, 1]),
        ]
        for (n_layer, n_embd, n_head, block_size, tokens), engine in itertools.product(configs, (RefValue, SlotValue)):
            with self.subTest(n_layer=n_layer, n_embd=n_embd, n_head=n_head, block_size=block_size,
                              engine=engine.__name__):
                config, sd = small_model(n_layer, n_embd, n_head, block_size, seed=n_layer)
                ref = to_ref(weights_of(sd), engine)
                loss = microgpt.doc_loss(tokens, sd, config)
                loss.backward()
                ref_loss = ref_doc_loss(tokens, ref, n_head)
                ref_loss.backward()
                assert_close(self, loss.data, ref_loss.data, 1e-9, 'loss')
                for name in sd:
                    for row, ref_row in zip(sd[name], ref[name]):
                        for p, r in zip(row, ref_row):
                            assert_close(self, p.grad, r.grad, 1e-9, name)

    def test_logits_match_the_reference_at_every_position(self):
        config, sd = small_model(2, 8, 4, 8)
        ref = to_ref(weights_of(sd))
        cache = [([], []), ([], [])]
        ref_keys, ref_values = [[], []], [[], []]
        for pos, token in enumerate([0, 3, 4, 5, 6]):
            logits = microgpt.gpt(token, pos, cache, sd, config)
            ref_logits = ref_gpt(token, pos, ref_keys, ref_values, ref, 4)
            for z, r in zip(logits, ref_logits):
                assert_close(self, z.data, r.data, 1e-9, f'logit at position {pos}')

    def test_one_backward_gives_the_gradient_of_the_mean_loss(self):
        # The mean of the per-position losses, differentiated once: the gradient
        # must equal the mean of each position's own gradient, taken separately.
        config, sd = small_model(1, 4, 2, 4)
        tokens = [0, 2, 3, 4, 1]
        microgpt.doc_loss(tokens, sd, config).backward()
        together = [p.grad for p in microgpt.parameters(sd)]
        separate = [0.0] * len(together)
        for n in range(1, len(tokens)):          # loss of position n-1 = n * mean(n) - (n-1) * mean(n-1)
            for sign, prefix in ((n, tokens[:n + 1]), (-(n - 1), tokens[:n])):
                if len(prefix) < 2:
                    continue
                for p in microgpt.parameters(sd):
                    p.grad = 0.0
                microgpt.doc_loss(prefix, sd, config).backward()
                for i, p in enumerate(microgpt.parameters(sd)):
                    separate[i] += sign * p.grad / (len(tokens) - 1)
        for got, want in zip(together, separate):
            assert_close(self, got, want, 1e-9, 'gradient')

    def test_doc_loss_crops_to_block_size(self):
        config, sd = small_model(1, 4, 2, 3)
        long_doc = [0, 2, 3, 4, 5, 6, 1]
        self.assertEqual(microgpt.doc_loss(long_doc, sd, config).data,
                         microgpt.doc_loss(long_doc[:4], sd, config).data)

    def test_a_shape_whose_heads_do_not_divide_n_embd_is_refused(self):
        # n_embd 10 in 3 heads of 3 numbers: head 3 would read past the vectors' end
        with self.assertRaisesRegex(ValueError, 'n_head must divide n_embd'):
            microgpt.init_state_dict(microgpt.GPTConfig(5, 10, 3, 1, 8))


if __name__ == '__main__':
    unittest.main()
