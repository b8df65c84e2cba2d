"""
microgpt: a complete GPT in one dependency-free Python file.

Read it top to bottom, in the order you need to understand it:
  1. dataset     2. tokenizer     3. autograd (Value)     4. parameters (state_dict)
  5. model       6. training      7. sampling             8. command line
and then an appendix of tools: checkpoints, a loss curve, attention maps, a benchmark.

    python microgpt.py          # train on names.txt, then invent new names
    python microgpt.py --help   # every knob
"""
import argparse
import gc
import json
import math
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from operator import mul


class InputError(ValueError):
    """Bad input (a file, a flag, a checkpoint): the command line prints it as one line."""


# -----------------------------------------------------------------------------
# 1. Dataset
# A text file with one document per line; here a document is a baby name.
# The model learns what documents look like, and then writes new ones.

def default_input_path():
    # names.txt beside this file, wherever it is run from. Pasted into a notebook
    # cell there is no __file__, so look in the current directory instead.
    folder = os.path.dirname(os.path.abspath(__file__)) if '__file__' in globals() else os.getcwd()
    return os.path.join(folder, 'names.txt')


def load_docs(path):
    """The non-blank lines of a UTF-8 text file, stripped of surrounding spaces."""
    try:
        with open(path, encoding='utf-8') as f:
            docs = [line.strip() for line in f]
    except FileNotFoundError:
        raise InputError(f'input file {path!r} not found; pass --input FILE, one document per line')
    except UnicodeDecodeError as e:
        raise InputError(f'input file {path!r} is not UTF-8 text (bad byte at offset {e.start})')
    except (OSError, ValueError) as e:
        raise InputError(f'cannot read input file {path!r}: {getattr(e, "strerror", None) or e}')
    docs = [doc for doc in docs if doc]
    if not docs:
        raise InputError(f'input file {path!r} is empty: it needs one document per line')
    return docs


def split_docs(docs, val_fraction, rng):
    """Shuffle, then hold out the first val_fraction of the documents for validation."""
    docs = list(docs)
    rng.shuffle(docs)
    n_val = int(len(docs) * val_fraction)
    return docs[n_val:], docs[:n_val]   # (train, val)


# -----------------------------------------------------------------------------
# 2. Tokenizer
# The model reads and writes integers (token ids), one per character. Two special
# tokens mark where a document starts (<BOS>) and ends (<EOS>): the model learns
# to begin a name after <BOS> and to say <EOS> when the name is complete.

class Tokenizer:
    BOS, EOS = 0, 1

    def __init__(self, chars):
        self.chars = sorted(set(chars))                   # id 2 + i is chars[i]
        self.vocab_size = 2 + len(self.chars)
        self.ids = {ch: 2 + i for i, ch in enumerate(self.chars)}

    def encode(self, text):
        for ch in text:
            if ch not in self.ids:
                raise InputError(f'character {ch!r} is not in the vocabulary')
        return [self.ids[ch] for ch in text]

    def decode(self, ids):
        return ''.join(self.chars[i - 2] for i in ids if i >= 2)


# -----------------------------------------------------------------------------
# 3. Autograd
# Every number in the network is a Value: a scalar that remembers the Values it
# was computed from (its children) and the local derivative d(self)/d(child) of
# each, worked out in the forward pass while the inputs are at hand. backward()
# then applies the chain rule: it walks the graph from the loss back to the
# parameters and adds  local_grad * node.grad  into each child's grad.

class Value:
    __slots__ = ('data', 'grad', '_children', '_local_grads')   # no per-object dict: smaller, faster

    def __init__(self, data, children=(), local_grads=()):
        self.data = data                  # the number
        self.grad = 0.0                   # d(loss)/d(self), filled in by backward()
        self._children = children         # the Values this one was computed from
        self._local_grads = local_grads   # d(self)/d(child), one per child

    def __add__(self, other):
        if isinstance(other, Value):      # d(a+b)/da = 1, d(a+b)/db = 1
            return Value(self.data + other.data, (self, other), (1.0, 1.0))
        return Value(self.data + other, (self,), (1.0,))

    def __mul__(self, other):
        if isinstance(other, Value):      # d(a*b)/da = b, d(a*b)/db = a
            return Value(self.data * other.data, (self, other), (other.data, self.data))
        return Value(self.data * other, (self,), (other,))

    def __pow__(self, k):                 # k is a plain number: d(a^k)/da = k * a^(k-1)
        return Value(float_pow(self.data, k), (self,), (k * float_pow(self.data, k - 1),))

    def exp(self):                        # d(e^a)/da = e^a
        e = math.exp(self.data)
        return Value(e, (self,), (e,))

    def log(self):                        # d(ln a)/da = 1/a
        return Value(math.log(self.data), (self,), (1.0 / self.data,))

    def relu(self):                       # d(max(0,a))/da = 1 if a > 0 else 0
        return Value(max(0.0, self.data), (self,), (float(self.data > 0),))

    # The rest are written with the ops above.
    def __neg__(self): return self * -1.0
    def __sub__(self, other): return self + (-other)
    def __truediv__(self, other): return self * other ** -1
    def __radd__(self, other): return self + other
    def __rsub__(self, other): return (-self) + other
    def __rmul__(self, other): return self * other
    def __rtruediv__(self, other): return self ** -1 * other
    def __repr__(self): return f'Value(data={self.data}, grad={self.grad})'

    def backward(self):
        """Fill in d(self)/d(v) for every Value v that self was computed from."""
        self.grad = 1.0
        for node in reversed(topological_order(self)):   # each node before its children
            grad = node.grad
            if grad:                                       # (a zero gradient passes on nothing)
                for child, local_grad in zip(node._children, node._local_grads):
                    child.grad += local_grad * grad        # chain rule


def topological_order(root):
    """The nodes of root's graph that have children, each one after all of its
    children. (Leaves, such as the parameters, pass nothing on: they are left out.)

    A depth-first search with an explicit stack instead of recursion, so a graph
    of any depth works. Each stack entry is a node and an iterator over its
    children; the node is finished when that iterator runs out."""
    order, visited = [], {root}
    stack = [(root, iter(root._children))]
    while stack:
        node, children = stack[-1]
        for child in children:
            if child._children and child not in visited:
                visited.add(child)
                stack.append((child, iter(child._children)))
                break
        else:                             # all children finished
            stack.pop()
            order.append(node)
    return order


def float_pow(x, k):
    # x ** k, but like float * and + it gives inf on overflow instead of raising
    try:
        return x ** k
    except OverflowError:
        return math.copysign(math.inf, x) if k % 2 == 1 else math.inf


# Fused ops: one node for a whole formula, with its derivative worked out by hand.
# They compute exactly what a chain of the binary ops above would, with far fewer
# nodes, so the graph is smaller and backward() is faster (tests/ checks both).

def dot(ws, xs):
    """sum_i w_i * x_i as ONE node with 2n children.  d/dw_i = x_i,  d/dx_i = w_i."""
    wd = [w.data for w in ws]
    xd = [x.data for x in xs]
    return Value(sum(map(mul, wd, xd)), ws + xs, xd + wd)


def linear(x, w):
    """W @ x: one dot node per row of w (one row per output feature)."""
    xd = [xi.data for xi in x]                  # read x's numbers once, not once per row
    out = []
    for row in w:
        wd = [wi.data for wi in row]
        out.append(Value(sum(map(mul, wd, xd)), row + x, xd + wd))   # dot(row, x)
    return out


def squared_relu(x):
    """relu(x)^2 = max(0, x)^2 as one node, instead of a relu node and a ** node.
    d/dx = 2 * relu(x)."""
    r = max(0.0, x.data)
    return Value(r * r, (x,), (2.0 * r,))


def exp_normalize(zs):
    # exp(z_i - max z) and their sum. Subtracting the max changes no ratio
    # between them, but keeps every exp() in (0, 1]: no overflow for any z.
    z_max = max(zs)
    exps = [math.exp(z - z_max) for z in zs]
    return z_max, exps, sum(exps)


def softmax(logits):
    """p_i = exp(z_i) / sum_j exp(z_j).   dp_i/dz_j = p_i * ([i == j] - p_j)."""
    _, exps, total = exp_normalize([z.data for z in logits])
    probs = [e / total for e in exps]
    return [Value(p_i, logits, [p_i * ((i == j) - p_j) for j, p_j in enumerate(probs)])
            for i, p_i in enumerate(probs)]


def cross_entropy(logits, target):
    """-log softmax(z)[target] = log(sum_j exp(z_j)) - z_target, as one node.
    d/dz_j = softmax(z)_j - [j == target]."""
    z_max, exps, total = exp_normalize([z.data for z in logits])
    loss = z_max + math.log(total) - logits[target].data
    grads = [e / total for e in exps]
    grads[target] -= 1.0
    return Value(loss, logits, grads)


def rmsnorm(x):
    """x / sqrt(mean(x^2) + 1e-5): rescale x to root-mean-square 1, so activations
    keep the same size however deep the network is. Built as one node for the scale
    s = (mean(x^2) + 1e-5)^(-1/2), with ds/dx_j = -s^3 * x_j / n, then x_i * s."""
    n = len(x)
    s = 1.0 / math.sqrt(sum(xi.data * xi.data for xi in x) / n + 1e-5)
    scale = Value(s, x, [-s * s * s * xi.data / n for xi in x])
    return [xi * scale for xi in x]


# -----------------------------------------------------------------------------
# 4. Parameters
# All the model's knowledge lives in these matrices of Values. Each matrix is a
# list of rows, one row per output feature (like a PyTorch Linear weight), filled
# with small random numbers; training nudges them to lower the loss.

def matrix_shapes(vocab_size, n_embd, n_layer, block_size):
    """The name and shape (rows, columns) of every weight matrix."""
    shapes = {
        'wte': (vocab_size, n_embd),    # token embeddings; also the output layer
        'wpe': (block_size, n_embd),    # position embeddings
    }
    for i in range(n_layer):
        shapes[f'layer{i}.attn_wq'] = (n_embd, n_embd)      # queries
        shapes[f'layer{i}.attn_wk'] = (n_embd, n_embd)      # keys
        shapes[f'layer{i}.attn_wv'] = (n_embd, n_embd)      # values
        shapes[f'layer{i}.attn_wo'] = (n_embd, n_embd)      # attention output
        shapes[f'layer{i}.mlp_fc1'] = (4 * n_embd, n_embd)  # MLP: widen 4 times
        shapes[f'layer{i}.mlp_fc2'] = (n_embd, 4 * n_embd)  # and back
    return shapes


def init_state_dict(vocab_size, n_embd, n_layer, block_size, seed=42, std=0.08):
    """Every matrix, filled with random numbers drawn from a normal distribution."""
    rng = random.Random(seed)
    return {name: [[Value(rng.gauss(0.0, std)) for _ in range(n_in)] for _ in range(n_out)]
            for name, (n_out, n_in) in matrix_shapes(vocab_size, n_embd, n_layer, block_size).items()}


def parameters(state_dict):
    """Every Value of every matrix, in a fixed order."""
    return [p for matrix in state_dict.values() for row in matrix for p in row]


def n_layer_of(state_dict):
    return sum(name.endswith('.attn_wq') for name in state_dict)


# -----------------------------------------------------------------------------
# 5. Model
# A GPT reads one token at a time and predicts the next. The residual stream x
# starts as the token's embedding plus its position's embedding; each layer adds
# what attention (looking back at earlier tokens) and an MLP (thinking about the
# current one) compute from it. Finally x is compared with every token's
# embedding: the scores (logits) say how likely each token is to come next.

def gpt(token_id, pos_id, keys, values, state_dict, n_head, attn_weights=None):
    """The logits for the token after token_id, which stands at position pos_id.

    keys[i] and values[i] hold layer i's key and value vectors of the earlier
    positions (the KV cache); this call appends the current position's. If a list
    attn_weights is given, each head's attention weights are appended to it."""
    sd = state_dict
    x = [t + p for t, p in zip(sd['wte'][token_id], sd['wpe'][pos_id])]   # (n_embd,)
    head_dim = len(x) // n_head
    scale = 1.0 / math.sqrt(head_dim)   # keeps q.k near unit size, so softmax is not saturated
    for i in range(len(keys)):
        # Attention: each head scores the earlier positions (q . k), turns the
        # scores into weights (softmax) and takes the weighted mean of their values.
        h = rmsnorm(x)
        q = linear(h, sd[f'layer{i}.attn_wq'])
        keys[i].append(linear(h, sd[f'layer{i}.attn_wk']))
        values[i].append(linear(h, sd[f'layer{i}.attn_wv']))
        heads = []                                               # (n_embd,) when done
        for hs in range(0, len(x), head_dim):                    # this head's slice of q, k, v
            q_h = q[hs:hs + head_dim]
            weights = softmax([dot(q_h, k[hs:hs + head_dim]) * scale for k in keys[i]])
            if attn_weights is not None:
                attn_weights.append([w.data for w in weights])
            heads += [dot(weights, [v[j] for v in values[i]]) for j in range(hs, hs + head_dim)]
        x = [a + b for a, b in zip(x, linear(heads, sd[f'layer{i}.attn_wo']))]
        # MLP: widen to 4*n_embd, squared ReLU (relu(h)^2: as cheap as ReLU,
        # and it trains a little better in small transformers), project back.
        h = linear(rmsnorm(x), sd[f'layer{i}.mlp_fc1'])
        h = [squared_relu(hi) for hi in h]
        x = [a + b for a, b in zip(x, linear(h, sd[f'layer{i}.mlp_fc2']))]
    # Weight tying: the token embeddings wte also score the next token.
    return linear(rmsnorm(x), sd['wte'])                        # (vocab_size,)


def doc_loss(tokens, state_dict, n_head):
    """Mean cross-entropy of predicting each token of a document from the ones before.

    tokens starts with <BOS>; it is cropped to block_size + 1 tokens, since the
    model has block_size positions and each predicts the token after it."""
    tokens = tokens[:len(state_dict['wpe']) + 1]
    n = len(tokens) - 1
    if n < 1:
        raise ValueError('doc_loss needs at least two tokens')
    n_layer = n_layer_of(state_dict)
    keys, values = [[] for _ in range(n_layer)], [[] for _ in range(n_layer)]
    losses = [cross_entropy(gpt(tokens[pos], pos, keys, values, state_dict, n_head), tokens[pos + 1])
              for pos in range(n)]
    return Value(sum(l.data for l in losses) / n, losses, [1.0 / n] * n)   # the mean: d/dl_i = 1/n


# -----------------------------------------------------------------------------
# 6. Training
# Show the model one document per step, measure its loss, compute every
# parameter's gradient with ONE backward() (so each gradient is exactly the
# derivative of this step's loss), and let Adam move each parameter downhill.

class Adam:
    """Adam (Kingma & Ba, 2015): each parameter gets a step size of its own, from
    running averages of its gradient (m) and of its squared gradient (v).
    weight_decay > 0 shrinks weights towards 0 separately from the gradient (AdamW)."""

    def __init__(self, params, beta1=0.85, beta2=0.99, eps=1e-8, weight_decay=0.0):
        self.params, self.beta1, self.beta2, self.eps = params, beta1, beta2, eps
        self.weight_decay = weight_decay
        self.m = [0.0] * len(params)
        self.v = [0.0] * len(params)
        self.t = 0                          # steps taken so far

    def step(self, lr):
        """Update every parameter from its grad, then zero the grad for the next step."""
        self.t += 1
        b1, b2, eps, wd = self.beta1, self.beta2, self.eps, self.weight_decay
        bias1, bias2 = 1.0 - b1 ** self.t, 1.0 - b2 ** self.t   # m, v start at 0: undo that bias
        grads = [p.grad for p in self.params]
        self.m = [b1 * m + (1.0 - b1) * g for m, g in zip(self.m, grads)]
        self.v = [b2 * v + (1.0 - b2) * g * g for v, g in zip(self.v, grads)]
        for p, m, v in zip(self.params, self.m, self.v):
            p.data -= lr * (wd * p.data + (m / bias1) / (math.sqrt(v / bias2) + eps))
            p.grad = 0.0


def lr_at(step, num_steps, learning_rate, warmup_steps):
    """Learning rate of step (0-based): a linear warmup, then a linear decay to 0."""
    if step < warmup_steps:
        return learning_rate * (step + 1) / warmup_steps
    return learning_rate * (num_steps - step) / (num_steps - warmup_steps)


def evaluate(state_dict, docs, n_head):
    """Mean loss over token lists: only the forward pass, nothing is trained."""
    return sum(doc_loss(tokens, state_dict, n_head).data for tokens in docs) / len(docs)


def train(state_dict, adam, train_data, val_data, n_head, num_steps, learning_rate,
          warmup_steps=0, eval_every=200, eval_docs=300, save=None, save_every=0):
    """Train for num_steps steps; return the losses seen, for reports and plots.

    train_data, val_data: documents as token lists. Each step takes the next
    training document; adam.t counts the steps across runs, so a resumed run goes
    on where the last one stopped. Every eval_every steps and at the end, print
    the mean loss of the first eval_docs validation documents. save(), if
    given, is called every save_every steps and at the end. Ctrl-C stops after
    the current step."""
    history = {'train': [], 'val': [], 'ms': []}    # loss per step; (step, val loss); ms per step
    eval_data = val_data[:eval_docs]
    progress = Progress(in_place=sys.stdout.isatty() or 'ipykernel' in sys.modules)

    def stop_if_diverged(loss, what, step):
        if not math.isfinite(loss):
            progress.end()
            raise InputError(f'the {what} became {loss} at step {step}; '
                             f'try a smaller --learning_rate than {learning_rate:g}')

    def report_val(step):
        if eval_data:
            loss = evaluate(state_dict, eval_data, n_head)
            stop_if_diverged(loss, 'validation loss', step)
            history['val'].append((step, loss))
            progress.line(f'step {step}/{num_steps} | val loss {loss:.4f} ({len(eval_data)} docs)')

    interrupted = []
    def on_ctrl_c(signum, frame):
        interrupted.append(True)
        signal.signal(signal.SIGINT, signal.default_int_handler)   # a second Ctrl-C stops at once
    # The graph of one step is tens of thousands of short-lived Values with no
    # reference cycles: reference counting frees them all. Python's cyclic garbage
    # collector would still scan them again and again, for nothing (about 15% of
    # a step's time), so it is paused while training.
    gc_was_enabled = gc.isenabled()
    if sys.implementation.name == 'cpython':   # (PyPy has no reference counting: its collector must run)
        gc.disable()
    old_handler = catch_ctrl_c(on_ctrl_c)
    try:
        report_val(0)
        for step in range(num_steps):
            t0 = time.perf_counter()
            lr = lr_at(step, num_steps, learning_rate, warmup_steps)
            loss = doc_loss(train_data[adam.t % len(train_data)], state_dict, n_head)
            stop_if_diverged(loss.data, 'loss', step + 1)
            loss.backward()
            adam.step(lr)
            ms = (time.perf_counter() - t0) * 1000
            history['train'].append(loss.data)
            history['ms'].append(ms)
            progress.step(f'step {step + 1}/{num_steps} | loss {loss.data:.4f} | lr {lr:.1e} | {ms:.1f} ms')
            done = step + 1 == num_steps or bool(interrupted)
            if eval_every and (step + 1) % eval_every == 0 or done:
                report_val(step + 1)
            if save and (save_every and (step + 1) % save_every == 0 or done):
                save()
            if interrupted:
                progress.line(f'interrupted: stopped after step {step + 1}')
                break
        progress.end()
    finally:
        catch_ctrl_c(old_handler)
        if gc_was_enabled:
            gc.enable()
    return history


def catch_ctrl_c(handler):
    # Install handler for Ctrl-C (SIGINT) and return the old one. Only the main
    # thread may do this; elsewhere Ctrl-C keeps its usual meaning.
    if handler is None:                 # (no old handler to put back)
        return None
    try:
        return signal.signal(signal.SIGINT, handler)
    except ValueError:
        return None


class Progress:
    """One status line per step: rewritten in place on a terminal (or a notebook),
    printed as plain lines in a pipe or a log."""

    def __init__(self, in_place):
        self.in_place, self.open = in_place, False

    def step(self, text):
        if self.in_place:
            print('\r' + text.ljust(70), end='', flush=True)
            self.open = True
        else:
            print(text, flush=True)

    def line(self, text):               # a line that stays
        self.end()
        print(text, flush=True)

    def end(self):
        if self.open:
            print(flush=True)
            self.open = False


# -----------------------------------------------------------------------------
# 7. Sampling
# To write a new document, start from <BOS>, ask the model for the next token's
# probabilities, draw one, feed it back in, and repeat until <EOS>.
# Temperature divides the logits first: below 1 the model keeps closer to its
# favourite tokens, above 1 it takes more chances.

def sample(state_dict, tokenizer, n_head, rng, temperature=1.0, prompt=''):
    """One new document that starts with prompt; at most block_size characters."""
    block_size = len(state_dict['wpe'])
    tokens = [Tokenizer.BOS] + tokenizer.encode(prompt)
    if len(tokens) > block_size + 1:
        raise InputError(f'the prompt has {len(prompt)} characters; at most {block_size} fit in block_size')
    n_layer = n_layer_of(state_dict)
    keys, values = [[] for _ in range(n_layer)], [[] for _ in range(n_layer)]
    for pos in range(block_size):
        logits = gpt(tokens[pos], pos, keys, values, state_dict, n_head)
        if pos + 1 < len(tokens):
            continue                        # still reading the prompt
        _, weights, _ = exp_normalize([z.data / temperature for z in logits])   # softmax, unnormalized
        weights[Tokenizer.BOS] = 0.0        # <BOS> only ever starts a document
        token_id = draw(weights, rng)
        if token_id == Tokenizer.EOS:
            break
        tokens.append(token_id)
    return tokenizer.decode(tokens)


def draw(weights, rng):
    """A random index, each i with probability weights[i] / sum(weights)."""
    r = rng.random() * sum(weights)
    for i, w in enumerate(weights):
        r -= w
        if r < 0:
            return i
    return len(weights) - 1                 # only reached through rounding


# -----------------------------------------------------------------------------
# 8. Command line
# Flags only: every flag sets the variable of the same name, and the work is
# done by the functions above. main(['--num_steps', '100']) does the same from a
# notebook.

SHAPE_FLAGS = ('n_embd', 'n_head', 'n_layer', 'block_size')   # a checkpoint fixes these


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):               # one line and status 2, no usage block
        self.exit(2, f'error: {message}\n')


def parse_args(argv):
    p = ArgumentParser(description='Train a tiny GPT on a list of documents, then sample new ones.')
    flag = p.add_argument
    # data
    flag('--input', help='text file, one document per line (default: names.txt)')
    flag('--val_fraction', type=float, default=0.1, help='share of documents held out for validation (default 0.1)')
    # model shape: None means the default, or the checkpoint's with --load
    flag('--n_embd', type=int, help='width of the residual stream (default 16)')
    flag('--n_head', type=int, help='attention heads per layer (default 4)')
    flag('--n_layer', type=int, help='transformer layers (default 1)')
    flag('--block_size', type=int, help='longest context in tokens (default 16)')
    # training
    flag('--num_steps', type=int, help='training steps, one document each (default 1000; 100 with --bench)')
    flag('--learning_rate', type=float, default=1e-2, help='peak Adam learning rate (default 0.01)')
    flag('--warmup_steps', type=int, default=0, help='steps of linear learning-rate warmup (default 0)')
    flag('--weight_decay', type=float, default=0.0, help='decoupled weight decay, as AdamW (default 0)')
    flag('--eval_every', type=int, default=200, help='steps between validation losses (default 200)')
    flag('--eval_docs', type=int, default=300, help='validation documents per evaluation (default 300; 0: none)')
    flag('--seed', type=int, default=42, help='random seed: same seed, same losses and samples (default 42)')
    # sampling
    flag('--num_samples', type=int, default=20, help='documents to sample after training (default 20)')
    flag('--temperature', type=float, default=1.0, help='sampling temperature, > 0 (default 1)')
    flag('--prompt', default='', help='every sample starts with this text')
    # tools (appendix)
    flag('--save', metavar='PATH', help='write a checkpoint here (JSON) during and after training')
    flag('--save_every', type=int, default=100, help='steps between checkpoints (default 100; 0: only at the end)')
    flag('--load', metavar='PATH', help='start from this checkpoint: weights, vocabulary, Adam state')
    flag('--show_attention', metavar='TEXT', help='draw each head\'s attention over TEXT')
    flag('--bench', action='store_true', help='time the training steps; no sampling')
    args = p.parse_args(argv)
    check_args(args)
    return args


def check_args(args):
    def fail(message):
        raise InputError(message)
    for name in SHAPE_FLAGS + ('num_steps',):
        value = getattr(args, name)
        if value is not None and value < (0 if name == 'num_steps' else 1):
            fail(f'--{name} must be at least {0 if name == "num_steps" else 1}, not {value}')
    for name in ('warmup_steps', 'eval_docs', 'save_every', 'num_samples'):
        if getattr(args, name) < 0:
            fail(f'--{name} must be 0 or more, not {getattr(args, name)}')
    if args.eval_every < 1:
        fail(f'--eval_every must be at least 1, not {args.eval_every}')
    for name in ('learning_rate', 'temperature'):
        if not (math.isfinite(getattr(args, name)) and getattr(args, name) > 0):
            fail(f'--{name} must be a positive number, not {getattr(args, name)}')
    if not (math.isfinite(args.weight_decay) and args.weight_decay >= 0):
        fail(f'--weight_decay must be 0 or a positive number, not {args.weight_decay}')
    if not 0 <= args.val_fraction < 1:
        fail(f'--val_fraction must be at least 0 and below 1, not {args.val_fraction}')
    if args.bench and args.num_steps == 0:
        fail('--bench needs --num_steps 1 or more')


def main(argv=None):
    """Run microgpt with command-line flags: main() reads sys.argv, main([...]) a list."""
    if argv is None:
        argv = [] if 'ipykernel' in sys.modules else sys.argv[1:]   # a notebook's argv is the kernel's
    if hasattr(sys.stdout, 'reconfigure'):   # print any document, even where the console's encoding lacks a character
        sys.stdout.reconfigure(errors='backslashreplace')
    try:
        run(parse_args(argv))
    except InputError as e:
        print(f'error: {e}', file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:               # Ctrl-C outside training (or twice): stop at once
        print('\ninterrupted', file=sys.stderr)
        sys.exit(130)


def run(args):
    """Build or load the model, train it, then sample and show what was asked for."""
    if args.load:
        state_dict, tokenizer, config, adam_state = load_checkpoint(args.load)
        for name in SHAPE_FLAGS:
            given = getattr(args, name)
            if given is not None and given != config[name]:
                raise InputError(f'--{name} {given} differs from the checkpoint\'s {name} {config[name]}; '
                                 f'leave it out when you --load')
    else:
        config = {'n_embd': 16, 'n_head': 4, 'n_layer': 1, 'block_size': 16}
        config.update({k: getattr(args, k) for k in SHAPE_FLAGS if getattr(args, k) is not None})
        if config['n_embd'] % config['n_head']:
            raise InputError(f'--n_embd {config["n_embd"]} is not divisible by --n_head {config["n_head"]}')
    num_steps = args.num_steps if args.num_steps is not None else (100 if args.bench else 1000)
    n_head = config['n_head']

    # Data: needed to train, and to build the vocabulary of a new model.
    if num_steps or not args.load:
        path = args.input or default_input_path()
        train_docs, val_docs = split_docs(load_docs(path), args.val_fraction, random.Random(args.seed))
        if not train_docs:
            raise InputError(f'--val_fraction {args.val_fraction} leaves no training documents')
        if not args.load:
            tokenizer = Tokenizer(''.join(train_docs + val_docs))
        train_data = [encode_doc(tokenizer, doc, path) for doc in train_docs]
        val_data = [encode_doc(tokenizer, doc, path) for doc in val_docs]
        print(f'{len(train_docs)} training and {len(val_docs)} validation documents from {path}, '
              f'vocabulary of {tokenizer.vocab_size} tokens')
    # Check the texts to sample from and to look at now, not after training.
    block_size = config['block_size']
    for flag, text, most in (('--prompt', args.prompt, block_size),
                             ('--show_attention', args.show_attention or '', block_size - 1)):
        try:
            tokenizer.encode(text)
        except InputError as e:
            raise InputError(f'{flag} {text!r}: {e}')
        if len(text) > most:
            raise InputError(f'{flag} has {len(text)} characters; at most {most} fit in --block_size {block_size}')
    if not args.load:
        state_dict = init_state_dict(tokenizer.vocab_size, config['n_embd'], config['n_layer'],
                                     config['block_size'], seed=args.seed)
    params = parameters(state_dict)
    print(f'{len(params)} parameters: ' + ', '.join(f'{k} {v}' for k, v in config.items()))
    adam = Adam(params, weight_decay=args.weight_decay)
    if args.load:
        adam.m, adam.v, adam.t = adam_state
        print(f'loaded {args.load}: trained for {adam.t} steps so far')

    if args.bench:
        return bench(state_dict, adam, train_data, n_head, num_steps, args.learning_rate, config)
    save = (lambda: save_checkpoint(args.save, state_dict, tokenizer, config, adam)) if args.save else None
    if num_steps:
        history = train(state_dict, adam, train_data, val_data, n_head, num_steps, args.learning_rate,
                        args.warmup_steps, args.eval_every, args.eval_docs, save, args.save_every)
        print(loss_curve(history))
        print(summary(history))
    elif save:
        save()
    if save:
        print(f'saved checkpoint {args.save} (step {adam.t})')
    if args.num_samples:
        plural = 's' if args.num_samples > 1 else ''
        print(f'--- {args.num_samples} sample{plural} (temperature {args.temperature:g}) ---')
    rng = random.Random(args.seed)          # the same model and seed sample the same documents
    for _ in range(args.num_samples):
        print(sample(state_dict, tokenizer, n_head, rng, args.temperature, args.prompt))
    if args.show_attention is not None:
        print(attention_maps(state_dict, tokenizer, n_head, args.show_attention))


def encode_doc(tokenizer, doc, path):
    """[<BOS>] + the document's tokens + [<EOS>]."""
    try:
        return [Tokenizer.BOS] + tokenizer.encode(doc) + [Tokenizer.EOS]
    except InputError as e:
        raise InputError(f'{path!r}: {e} (the checkpoint was trained on other characters)')


# =============================================================================
# Appendix: tools around the algorithm. The algorithm above never uses them;
# only the command line (section 8) calls them, for the flags that ask for them.
# =============================================================================

# --- Checkpoints: a JSON file (readable, and safe to load, unlike pickle) ------

def save_checkpoint(path, state_dict, tokenizer, config, adam):
    checkpoint = {
        'format': 'microgpt checkpoint 1',
        'config': config,
        'chars': tokenizer.chars,
        'step': adam.t,
        'state_dict': {name: [[p.data for p in row] for row in matrix] for name, matrix in state_dict.items()},
        'adam_m': adam.m,
        'adam_v': adam.v,
    }
    # Write a temporary file beside the target, then rename it over the target in
    # one step: an interrupted run never leaves a half-written checkpoint.
    folder = os.path.dirname(os.path.abspath(path))
    try:
        with tempfile.NamedTemporaryFile('w', dir=folder, suffix='.tmp', delete=False) as f:
            json.dump(checkpoint, f)
        os.replace(f.name, path)
    except OSError as e:
        raise InputError(f'cannot write checkpoint {path!r}: {e.strerror or e}')


def load_checkpoint(path):
    """(state_dict, tokenizer, config, (adam_m, adam_v, step)) from save_checkpoint's file."""
    try:
        with open(path, encoding='utf-8') as f:
            ck = json.load(f)
    except FileNotFoundError:
        raise InputError(f'checkpoint {path!r} not found')
    except (OSError, ValueError) as e:
        raise InputError(f'checkpoint {path!r} is damaged or not a checkpoint ({type(e).__name__})')
    try:
        if ck['format'] != 'microgpt checkpoint 1':
            raise ValueError('format')
        config = {name: ck['config'][name] for name in SHAPE_FLAGS}
        tokenizer = Tokenizer(ck['chars'])
        if tokenizer.chars != ck['chars'] or any(len(ch) != 1 for ch in tokenizer.chars):
            raise ValueError('chars')
        if not all(type(v) is int and v >= 1 for v in config.values()) or config['n_embd'] % config['n_head']:
            raise ValueError('config')
        if len(ck['state_dict']) != 2 + 6 * config['n_layer']:      # (before a huge n_layer costs time)
            raise ValueError('number of matrices')
        shapes = matrix_shapes(tokenizer.vocab_size, config['n_embd'], config['n_layer'], config['block_size'])
        if list(ck['state_dict']) != list(shapes):
            raise ValueError('matrix names')
        state_dict = {}
        for name, matrix in ck['state_dict'].items():
            n_out, n_in = shapes[name]
            if len(matrix) != n_out or any(len(row) != n_in for row in matrix):
                raise ValueError(f'shape of {name}')
            state_dict[name] = [[Value(finite(x)) for x in row] for row in matrix]
        n = len(parameters(state_dict))
        adam_m = [finite(x) for x in ck['adam_m']]
        adam_v = [finite(x) for x in ck['adam_v']]
        step = ck['step']
        if len(adam_m) != n or len(adam_v) != n or type(step) is not int or step < 0:
            raise ValueError('adam state')
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise InputError(f'checkpoint {path!r} is damaged or not a microgpt checkpoint ({e})')
    return state_dict, tokenizer, config, (adam_m, adam_v, step)


def finite(x):
    if type(x) not in (int, float) or not math.isfinite(x):
        raise ValueError(f'not a finite number: {x!r}')
    return float(x)


# --- Loss curve: drawn with plain characters --------------------------------------

def loss_curve(history, width=60, height=10):
    """The losses against the step, drawn with characters: o is the validation
    loss; * the training loss, as a running mean over the last tenth of the steps
    (one document's loss alone jumps around too much to see a trend)."""
    train_losses, n = history['train'], len(history['train'])
    if not n:
        return ''
    width = min(width, n)
    window = max(1, n // 10)
    points = []                                          # (column, loss, mark)
    for column in range(width):
        end = (column + 1) * n // width                  # steps done at this column
        recent = train_losses[max(0, end - window):end]
        points.append((column, sum(recent) / len(recent), '*'))
    points += [(min(step * width // n, width - 1), loss, 'o') for step, loss in history['val']]
    lo, hi = min(p[1] for p in points), max(p[1] for p in points)
    grid = [[' '] * width for _ in range(height)]
    for column, loss, mark in points:
        grid[round((hi - loss) / (hi - lo or 1.0) * (height - 1))][column] = mark
    lines = ['loss curve (* train, o validation)']
    lines += [f'{hi - r * (hi - lo) / (height - 1):6.2f} |' + ''.join(row) for r, row in enumerate(grid)]
    lines.append('       +' + '-' * width)
    last = f'{n} steps'
    lines.append('        0' + last.rjust(max(width - 1, len(last) + 1)))
    return '\n'.join(lines)


def summary(history):
    """One line: the final training loss (a mean over the last tenth of the steps,
    as one document's loss is noisy), the final validation loss, the speed."""
    losses, ms = history['train'], history['ms']
    recent = losses[-max(1, len(losses) // 10):]
    line = f'after {len(losses)} steps: train loss {sum(recent) / len(recent):.4f} (mean of the last {len(recent)})'
    if history['val']:
        line += f', val loss {history["val"][-1][1]:.4f}'
    return line + f', {statistics.median(ms):.1f} ms per step (median)'


# --- Attention maps: what each head looks at ----------------------------------------

def attention_maps(state_dict, tokenizer, n_head, text):
    """For each layer and head, a character heat map of the attention weights over text:
    row = the position reading, column = the position read (darker = more weight)."""
    block_size = len(state_dict['wpe'])
    tokens = [Tokenizer.BOS] + tokenizer.encode(text)
    if len(tokens) > block_size:
        raise InputError(f'the text has {len(text)} characters; at most {block_size - 1} fit in block_size')
    n_layer = n_layer_of(state_dict)
    keys, values, weights = [[] for _ in range(n_layer)], [[] for _ in range(n_layer)], []
    for pos, token_id in enumerate(tokens):
        gpt(token_id, pos, keys, values, state_dict, n_head, weights)
    # weights holds, position by position, layer by layer, one list per head
    labels = '^' + text                     # ^ stands for <BOS>
    shades = ' .:-=+*#%@'                   # weight 0 to 0.1 is ' ', ..., 0.9 to 1 is '@'
    out = [f'attention over {text!r} (^ is <BOS>; rows read, columns are read; darker = more weight)']
    for layer in range(n_layer):
        for head in range(n_head):
            out.append(f'layer {layer} head {head}')
            out.append('   ' + labels)
            for pos in range(len(tokens)):
                row = weights[(pos * n_layer + layer) * n_head + head]
                out.append(f' {labels[pos]} ' + ''.join(shades[min(int(w * 10), 9)] for w in row))
    return '\n'.join(out)


# --- Benchmark: the speed of a training step, for anyone to rerun ------------------

def bench(state_dict, adam, train_data, n_head, num_steps, learning_rate, config):
    history = train(state_dict, adam, train_data, [], n_head, num_steps, learning_rate, eval_docs=0)
    graph = [graph_size(doc_loss(train_data[t % len(train_data)], state_dict, n_head))
             for t in range(adam.t - num_steps, adam.t)]
    try:
        import resource                     # (Unix only)
        kilobytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform == 'darwin' else 1)
        peak = f'{kilobytes / 1024:.1f} MB'
    except ImportError:
        peak = 'unknown on this platform'
    impl = f'{sys.implementation.name} {".".join(map(str, sys.version_info[:3]))}'
    ms = history['ms']
    print(f'bench: {len(ms)} steps, {", ".join(f"{k} {v}" for k, v in config.items())}, {impl}')
    print(f'ms per step: median {statistics.median(ms):.2f} (min {min(ms):.2f}, max {max(ms):.2f})')
    print(f'graph per step: {sum(n for n, _ in graph) // len(graph)} nodes, '
          f'{sum(e for _, e in graph) // len(graph)} edges (mean)')
    print(f'peak memory: {peak}')


def graph_size(root):
    """(nodes, edges) of root's graph, counting the leaves (parameters) as nodes."""
    interior = topological_order(root)
    leaves = {child for node in interior for child in node._children if not child._children}
    return len(interior) + len(leaves), sum(len(node._children) for node in interior)


if __name__ == '__main__':
    main()
