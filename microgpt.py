"""microgpt: a complete GPT in one dependency-free Python file (python microgpt.py).
Part I, the algorithm, in order: 1. dataset, 2. tokenizer, 3. autograd, 4. parameters,
5. model, 6. training, 7. sampling, 8. the whole story, told once (train_and_sample).
Part II is the workbench around it (command line, checkpoints, views, ...): skip it."""
import math
import random
from collections import namedtuple
from itertools import count
from operator import attrgetter, mul

# Part I: the algorithm ================================================================
# --------------------------------------------------------------------------------------
# 1. Dataset
# A text with one document per line; here a document is a baby name. The model learns
# what the documents look like, and then writes new ones.

def load_docs(text):
    """The documents of a text: its non-blank lines, without surrounding spaces."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def split_docs(docs, val_fraction, rng):
    """Shuffle docs (in place), then hold out the first val_fraction: how well the model
    predicts names it never trained on shows what it learned, not what it memorised."""
    rng.shuffle(docs)
    n_val = int(len(docs) * val_fraction)
    return docs[n_val:], docs[:n_val]                # (train, val)


# --------------------------------------------------------------------------------------
# 2. Tokenizer
# The model reads and writes integers (token ids), one per character. Two special
# tokens mark where a document starts (<BOS>) and ends (<EOS>): the model learns to
# begin a name after <BOS>, and to say <EOS> when the name is complete.

class Tokenizer:
    BOS, EOS = 0, 1            # the ids of the two special tokens (decode() drops them)

    def __init__(self, text):
        self.chars = sorted(set(text))               # every character, in a fixed order
        self.tokens = ['<BOS>', '<EOS>'] + self.chars   # token id i is tokens[i]
        self.ids = {ch: i for i, ch in enumerate(self.chars, start=2)}  # 'a': 2, ...
        self.vocab_size = len(self.tokens)

    def encode(self, text):         # (a character never seen has no id: say which one)
        for ch in set(text) - set(self.ids): raise ValueError(f'{ch!r} is not a token')
        return [self.ids[ch] for ch in text]

    def encode_doc(self, doc): return [self.BOS] + self.encode(doc) + [self.EOS]
    def decode(self, ids): return ''.join(self.tokens[i] for i in ids if i > self.EOS)


# --------------------------------------------------------------------------------------
# 3. Autograd
# Training needs the derivative of one number, the loss (how wrong the predictions are,
# section 5), with respect to every parameter. So each number the loss is made of is a
# Value that remembers the Values it was computed from, its inputs (its "children": the
# graph is drawn with the loss on top) and the derivative of itself with respect to
# each (its local gradients), known when it is computed. backward() applies the chain
# rule from the loss down, newest node first: each node adds local_grad * node.grad
# into each child's grad. A child used by two nodes gets the sum of both (the chain
# rule for a variable on two paths). By hand, c = a*b + a^2 at a = 2, b = -3:
#   d = a * b = -6;  e = a ** 2 = 4;  c = d + e = -2.  c.grad = 1; then, newest first:
#   c: local grads 1, 1:     d.grad = 1 * 1 = 1,  e.grad = 1 * 1 = 1
#   e: local grad 2a = 4:    a.grad += 4 * 1,  a.grad = 4
#   d: local grads b, a:     a.grad += -3 * 1, a.grad = 1 (= b + 2a);  b.grad = 2
made = count()                           # numbers the Values as they are made


class Value:
    __slots__ = ('data', 'grad', 'children', 'local_grads', 'op', 'number')  # (memory)

    def __init__(self, data, children=(), local_grads=(), op=''):
        self.data = float(data)           # the number
        self.grad = 0.0                   # d(loss)/d(self), filled in by backward()
        self.children = children          # the Values this one was computed from
        self.local_grads = local_grads    # d(self)/d(child), one per child
        self.op = op                      # what computed it: '+', '*', 'exp', ...
        self.number = next(made)          # made after its children: a larger number

    def __add__(self, other):             # d(a+b)/da = 1, d(a+b)/db = 1
        if isinstance(other, Value):
            return Value(self.data + other.data, (self, other), (1.0, 1.0), '+')
        return Value(self.data + other, (self,), (1.0,), '+')   # other: a plain number

    def __mul__(self, other):             # d(a*b)/da = b, d(a*b)/db = a
        if isinstance(other, Value):
            return Value(self.data * other.data, (self, other), (other.data, self.data),
                         '*')
        return Value(self.data * other, (self,), (other,), '*')

    def __pow__(self, k):                 # k is a plain number: d(a^k)/da = k * a^(k-1)
        slope = k * self.data ** (k - 1) if k else 0.0   # (k = 0: a ** -1 could be 1/0)
        return Value(self.data ** k, (self,), (slope,), f'**{k}')

    # d(e^a)/da = e^a;  d(ln a)/da = 1/a;  d(max(0,a))/da = 1 if a > 0 else 0 (the model
    # has log and relu inside one-node ops, section 5; they are here for you to try)
    def exp(self): return Value(math.exp(self.data), (self,), (math.exp(self.data),),
                                'exp')
    def log(self): return Value(math.log(self.data), (self,), (1 / self.data,), 'log')
    def relu(self): return Value(max(0, self.data), (self,), (float(self.data > 0),),
                                 'relu')

    # The rest are built from the ops above, so their derivatives come for free. For
    # 2 + a, Python asks a.__radd__(2) (2, a plain number, cannot add a Value): a + 2.
    def __neg__(self): return self * -1.0
    def __sub__(self, other): return self + (-other)
    def __truediv__(self, other): return self * other ** -1
    __radd__, __rmul__ = __add__, __mul__   # (and sum() of Values starts with 0 + a)
    def __rsub__(self, other): return (-self) + other
    def __rtruediv__(self, other): return self ** -1 * other
    def __repr__(self): return f'Value({self.data}, grad={self.grad}, op={self.op!r})'

    def backward(self):
        """Fill in d(self)/d(v) as v.grad, for every Value v that self came from."""
        if self.grad: raise RuntimeError('backward() ran already: grads would add up')
        self.grad = 1.0                   # d(self)/d(self)
        for node in reversed(topological_order(self)):
            grad = node.grad
            if grad:                      # (a zero gradient passes on nothing)
                for child, local_grad in zip(node.children, node.local_grads):
                    child.grad += local_grad * grad   # chain rule; += sums the paths


def topological_order(root):
    """The nodes of root's graph that have children, in a "topological order": each
    after all of its children. backward() takes them in reverse, so that a node passes
    its grad on only once every node that uses it has added to it. A Value is made
    after its children, so the order they were made in is one: collect the nodes, sort
    by number. (No recursion, so no depth limit: Python stops recursions at 1000.)"""
    nodes, stack = {root}, [root]
    while stack:
        for child in stack.pop().children:
            if child.children and child not in nodes:   # (leaves pass nothing on)
                nodes.add(child)
                stack.append(child)
    return sorted(nodes, key=attrgetter('number'))


def dot(a, b):
    """a . b = sum_i a_i * b_i, as ONE node with the 2n children a_1..a_n, b_1..b_n
    (made of * and +, it would be 2n - 1 nodes; the model's work is mostly dots). Such
    a fused node (so are squared_relu and cross_entropy, in section 5) has its local
    gradients worked out by hand: the derivative of a_i * b_i is b_i for a_i, and a_i
    for b_i. (In dot(x, x) each x_i is a child twice: backward() adds both, 2 x_i.)"""
    if len(a) != len(b): raise ValueError(f'dot product of lengths {len(a)}, {len(b)}')
    a_data, b_data = [ai.data for ai in a], [bi.data for bi in b]
    # the children: lists a and b joined (a + b); their local grads: b's, then a's
    return Value(sum(map(mul, a_data, b_data)), a + b, b_data + a_data, 'dot')


def linear(x, w):
    """The matrix w times the vector x: the nodes [dot(row, x) for row in w], written
    out only so that x's numbers are read once for all rows, not once per row."""
    if len(w[0]) != len(x): raise ValueError(f'{len(w[0])} columns, {len(x)} numbers')
    x_data = [xj.data for xj in x]
    out = []
    for row in w:
        row_data = [wj.data for wj in row]
        out.append(Value(sum(map(mul, row_data, x_data)), row + x, x_data + row_data,
                         'dot'))
    return out


# --------------------------------------------------------------------------------------
# 4. Parameters
# All the model's knowledge lives in matrices of Values, its parameters, learned by
# training: a matrix is a list of rows. An embedding is a learned vector that stands
# for a token (wte: token embeddings, a row per token) or a position (wpe); in other
# matrices, row i holds the weights of a layer's output i. The shape: vocab_size
# tokens, n_embd numbers per token, n_layer layers of n_head heads, block_size places.
GPTConfig = namedtuple('GPTConfig', 'vocab_size n_embd n_head n_layer block_size')


def matrix_shapes(config):
    """{name: (rows, columns)}: wte, wpe, and per layer attention's query, key, value
    and output matrices and the MLP's two (a "multilayer perceptron", section 5)."""
    n = config.n_embd
    shapes = {'wte': (config.vocab_size, n), 'wpe': (config.block_size, n)}
    for i in range(config.n_layer):
        shapes.update({f'layer{i}.attn_{w}': (n, n) for w in ('wq', 'wk', 'wv', 'wo')})
        shapes.update({f'layer{i}.mlp_fc1': (4 * n, n),
                       f'layer{i}.mlp_fc2': (n, 4 * n)})
    return shapes


def init_state_dict(config, seed=42, std=0.15):
    """Every matrix, random numbers of mean 0: all different, so that no two outputs
    learn the same thing; small (std 0.15), so that no first guess is sure and wrong."""
    if config.n_embd % config.n_head: raise ValueError('n_head must divide n_embd')
    rng = random.Random(seed)
    return {name: [[Value(rng.gauss(0, std)) for _ in range(cols)] for _ in range(rows)]
            for name, (rows, cols) in matrix_shapes(config).items()}


def parameters(state_dict):
    """Every Value of every matrix, always in this order: Adam's m[i], v[i] go by it."""
    return [p for matrix in state_dict.values() for row in matrix for p in row]


# --------------------------------------------------------------------------------------
# 5. Model
# A GPT ("generative pre-trained transformer") reads tokens and predicts the next one,
# here one token at a time. One token's path (28 tokens: a-z, <BOS>, <EOS>; n_embd 16):
#   token id -> wte row (16) --+
#                              +--> x (16), the residual stream
#   position -> wpe row (16) --+
#   each layer:  x --> rmsnorm -> attention (keys, values of the earlier tokens) --> + x
#                x --> rmsnorm -> mlp_fc1 (64) -> relu^2 -> mlp_fc2 (16) ----------> + x
#   x --> rmsnorm -> a dot product with each wte row (weight tying) -> logits (28)
# x, the "residual stream", starts as the token's embedding plus its position's (as
# attention sums over tokens, and a sum ignores their order, the position must be in
# x). Each layer ADDS to x what attention (reading the earlier tokens) and the MLP
# (working on this one) make of it: an add passes gradients straight down (local grad
# 1), where through the layers alone they would be multiplied layer after layer, and
# could fade. The logits are raw scores, one per token, that softmax makes
# probabilities of. The loss is -log of the probability given to the true next token:
# 0 if sure and right, ln(vocab_size) = 3.33 for a uniform guess.

def softmax(logits):
    """p_i = exp(z_i) / sum_j exp(z_j): scores to probabilities (positive, sum 1).
    Subtracting the largest z keeps every exp() <= 1 (no overflow) and changes no p_i
    (top and bottom are divided by exp(z_max)); as no p_i depends on it, z_max needs no
    gradient: a plain number."""
    z_max = max(z.data for z in logits)
    exps = [(z - z_max).exp() for z in logits]
    total_inv = sum(exps) ** -1                 # 1 / sum, once for all i
    return [e * total_inv for e in exps]


def rmsnorm(x):
    """x / sqrt(mean(x^2) + 1e-5) (1e-5: never 1/0): x rescaled to a root-mean-square of
    1, so that each layer gets inputs of one size however x grew. backward() adds x_i's
    two paths to the output: directly, and through the scale."""
    scale = (dot(x, x) / len(x) + 1e-5) ** -0.5    # dot(x, x): the sum of squares
    return [xi * scale for xi in x]


def attention(x, keys, values, sd, i, config, weights_seen=None):
    """Layer i's attention at the newest position, from its normalized vector x: a
    query q (what this token looks for), a key k (what it offers), a value v (what it
    passes on); k and v join the cache of the earlier positions' keys and values. Each
    head, on its own slice of these vectors, weighs the positions s so far (this one
    too) by softmax over s of q . k_s / sqrt(head_dim), and sums their v_s so weighted.
    Heads can look for different things (a vowel, the letter before...); wo mixes what
    they found. (weights_seen: Part II draws them.)"""
    head_dim = config.n_embd // config.n_head
    q = linear(x, sd[f'layer{i}.attn_wq'])
    keys.append(linear(x, sd[f'layer{i}.attn_wk']))
    values.append(linear(x, sd[f'layer{i}.attn_wv']))
    out = []
    for h in range(0, config.n_embd, head_dim):    # a head: numbers h to h + head_dim
        q_h = q[h:h + head_dim]
        k_h = [k[h:h + head_dim] for k in keys]      # each position's key: this slice
        v_h = [v[h:h + head_dim] for v in values]
        # q . k sums head_dim products: it spreads ~sqrt(head_dim). Divided: scores ~1
        weights = softmax([dot(q_h, k_s) / math.sqrt(head_dim) for k_s in k_h])
        # element j of sum_s weights_s * v_s: the weights dotted with each v_s's j-th
        out += [dot(weights, [v_s[j] for v_s in v_h]) for j in range(head_dim)]
        if weights_seen is not None: weights_seen.append([w.data for w in weights])
    return linear(out, sd[f'layer{i}.attn_wo'])


def squared_relu(x):
    """relu(x)^2, which trains a little better than relu, fused: the chain rule gives
    d/dx relu(x)^2 = 2 relu(x) relu'(x), which is 2 relu(x) for every x (where x < 0,
    relu(x) = 0 and relu'(x) = 0 both)."""
    r = max(0.0, x.data)
    return Value(r * r, (x,), (2.0 * r,), 'relu^2')


def gpt(token_id, pos_id, cache, sd, config, weights_seen=None):
    """The logits for the token after token_id, at position pos_id, from the weights
    sd. cache[i] = (keys, values): layer i's keys and values of the earlier positions
    (this call adds its own). They are Values of the same graph, so a later position's
    loss sends gradients back through them too. A GPT that reads all positions at once
    needs a "causal mask" to hide the future from each; here only the past is cached."""
    x = [t + p for t, p in zip(sd['wte'][token_id], sd['wpe'][pos_id])]   # (n_embd,)
    for i, (keys, values) in enumerate(cache):
        a = attention(rmsnorm(x), keys, values, sd, i, config, weights_seen)
        x = [xj + aj for xj, aj in zip(x, a)]
        # The MLP: 4 times wider, squared ReLU, back (without it w2 (w1 x) = (w2 w1) x)
        h = linear(rmsnorm(x), sd[f'layer{i}.mlp_fc1'])
        h = linear([squared_relu(hj) for hj in h], sd[f'layer{i}.mlp_fc2'])
        x = [xj + hj for xj, hj in zip(x, h)]
    # A last rmsnorm (x grew at each add). Weight tying: a token's wte row is its input
    # AND scores it as output (a dot product): tokens alike in and out share one row.
    return linear(rmsnorm(x), sd['wte'])


def cross_entropy(logits, target):
    """The loss -log softmax(z)[target] = log(sum_j exp(z_j)) - z_target: the value of
    -softmax(logits)[target].log(), fused. d/dz_j of log(sum_k exp(z_k)) is
    exp(z_j) / sum_k exp(z_k), that is softmax(z)_j; d/dz_j of z_target is 1 for j =
    target, else 0. So d/dz_j = softmax(z)_j, minus 1 for the target token."""
    z_max = max(z.data for z in logits)        # as in softmax: no overflow
    exps = [math.exp(z.data - z_max) for z in logits]
    total = sum(exps)                          # z_max + log(total) = log(sum exp(z))
    grads = [e / total for e in exps]          # softmax(z)
    grads[target] -= 1.0
    return Value(z_max + math.log(total) - logits[target].data, logits, grads, 'xent')


def doc_loss(tokens, state_dict, config):
    """The mean loss of predicting each token of a document from the ones before it.
    tokens starts with <BOS>; block_size positions at most are read (names: all)."""
    cache = [([], []) for _ in range(config.n_layer)]   # per layer: (keys, values)
    losses = [cross_entropy(gpt(tokens[pos], pos, cache, state_dict, config),
                            tokens[pos + 1])
              for pos in range(min(len(tokens) - 1, config.block_size))]
    return sum(losses) / len(losses)


# --------------------------------------------------------------------------------------
# 6. Training
# A parameter's gradient says how the loss changes as it grows, so a small move against
# it, p -= lr * p.grad (lr: the learning rate), lowers the loss: gradient descent. A
# step: the mean loss of a few documents, ONE backward() for all gradients, Adam.

class Adam:
    """Adam (Kingma & Ba, 2015). Plain gradient descent steps as far as the gradient is
    large, and gradients differ by orders of magnitude. Adam divides a running mean of
    each gradient (m) by the root of a running mean of its square (v): about +-1 for a
    steady gradient, so each weight moves about lr a step, less if its gradient is noisy
    (b1, b2 near 1: the means forget slowly). weight_decay (AdamW, off by default)
    shrinks each weight a little every step."""

    def __init__(self, params, weight_decay=0.0, b1=0.85, b2=0.99, eps=1e-8):
        self.params, self.weight_decay, self.betas, self.eps = (params, weight_decay,
                                                                 (b1, b2), eps)
        self.m, self.v, self.t = [0.0] * len(params), [0.0] * len(params), 0  # t: steps

    def step(self, lr):
        """Move every parameter, then set its grad back to 0 (backward() adds to it)."""
        self.t += 1
        (b1, b2), eps, wd = self.betas, self.eps, self.weight_decay
        # m and v start at 0, so after t steps of a steady gradient g, m = (1 - b1^t) g:
        # dividing by 1 - b1^t (and v by 1 - b2^t) undoes that pull towards 0.
        fix1, fix2 = 1.0 - b1 ** self.t, 1.0 - b2 ** self.t
        self.m = [b1 * m + (1 - b1) * p.grad for m, p in zip(self.m, self.params)]
        self.v = [b2 * v + (1 - b2) * p.grad ** 2 for v, p in zip(self.v, self.params)]
        for p, m, v in zip(self.params, self.m, self.v):
            p.data -= lr * (wd * p.data + (m / fix1) / (math.sqrt(v / fix2) + eps))
            p.grad = 0.0


def lr_at(step, num_steps, learning_rate, warmup_steps):
    """The learning rate of step (from 0): a linear warmup (Adam's first m and v rest on
    a gradient or two, too few to trust: small steps first), then a linear decay."""
    if step < warmup_steps: return learning_rate * ((step + 1) / warmup_steps)
    return learning_rate * ((num_steps - step) / (num_steps - warmup_steps))


# A model: its shape and tokenizer (fixed), its weights and Adam's state (updated).
Model = namedtuple('Model', 'config tokenizer state_dict adam')


def train_step(model, docs, lr):
    """One step on docs: their mean loss, ONE backward(), an Adam step; the loss."""
    config, tokenizer, state_dict, adam = model
    loss = sum(doc_loss(tokenizer.encode_doc(doc), state_dict, config)
               for doc in docs) / len(docs)
    loss.backward()
    adam.step(lr)
    return loss


def train(model, docs, num_steps, learning_rate, warmup_steps, batch_size):
    """num_steps steps, each on the next batch_size documents, printing the loss."""
    if not docs or batch_size < 1: raise ValueError('no documents, or no batch_size')
    for step in range(num_steps):
        batch = [docs[(step * batch_size + b) % len(docs)] for b in range(batch_size)]
        loss = train_step(model, batch, lr_at(step, num_steps, learning_rate,
                                              warmup_steps)).data
        if step == 0 or (step + 1) % 50 == 0 or step + 1 == num_steps:
            print(f'step {step + 1:4d} / {num_steps} | loss {loss:.4f}')


# --------------------------------------------------------------------------------------
# 7. Sampling
# To write a new document: feed <BOS>, draw the next token from the model's
# probabilities, feed it back in, and so on until <EOS>. The temperature T divides the
# logits first: below 1 the model keeps to its favourite tokens, above 1 it dares.

def sample(state_dict, tokenizer, config, rng, temperature=1.0, prompt=''):
    """One new document that starts with prompt: it ends at <EOS> or at block_size."""
    if not temperature > 0: raise ValueError(f'temperature {temperature} is not > 0')
    tokens = [Tokenizer.BOS] + tokenizer.encode(prompt)
    cache = [([], []) for _ in range(config.n_layer)]
    for pos in range(config.block_size):
        logits = [z.data for z in gpt(tokens[pos], pos, cache, state_dict, config)]
        if pos + 1 < len(tokens): continue   # the prompt has the next token: no draw
        # softmax(z / T), on the plain numbers, without <BOS> (id 0: it only starts a
        # document), and not divided by its sum (choices() needs none).
        z_max = max(logits[1:])
        weights = [0.0] + [math.exp((z - z_max) / temperature) for z in logits[1:]]
        token_id = rng.choices(range(len(weights)), weights)[0]   # (a list of one)
        if token_id == Tokenizer.EOS: break
        tokens.append(token_id)
    return tokenizer.decode(tokens)


# --------------------------------------------------------------------------------------
# 8. The whole story
# Everything above, in the order it happens.

def train_and_sample(input='names.txt', val_fraction=0.1, seed=42, n_embd=16,
                     n_head=4, n_layer=1, block_size=16, num_steps=750, batch_size=4,
                     learning_rate=0.01, warmup_steps=50, weight_decay=0.0,
                     eval_docs=300, num_samples=20, temperature=0.5, prompt=''):
    """Read the documents, build a GPT, train it, measure its loss on eval_docs
    documents it never saw, print num_samples new documents, return the model."""
    with open(input, encoding='utf-8-sig') as f:
        docs = load_docs(f.read())
    train_docs, val_docs = split_docs(docs, val_fraction, random.Random(seed))
    tokenizer = Tokenizer(''.join(docs))  # every character (val_docs' too: all encode)
    config = GPTConfig(tokenizer.vocab_size, n_embd, n_head, n_layer, block_size)
    state_dict = init_state_dict(config, seed)
    model = Model(config, tokenizer, state_dict,
                  Adam(parameters(state_dict), weight_decay))
    print(f'{len(train_docs)} training documents, {len(model.adam.params)} parameters')
    train(model, train_docs, num_steps, learning_rate, warmup_steps, batch_size)
    losses = [doc_loss(tokenizer.encode_doc(doc), state_dict, config).data
              for doc in val_docs[:eval_docs]]        # documents it never trained on
    if losses: print(f'validation loss {sum(losses) / len(losses):.4f}')
    rng = random.Random(seed)             # the same model and seed write the same names
    for _ in range(num_samples):
        print(sample(state_dict, tokenizer, config, rng, temperature, prompt))
    return model

# Part II: the workbench ===============================================================
# What `python microgpt.py` adds around Part I, and a learner may skip: the command
# line; checks that turn bad input into one line (before a long run, not after it);
# a training loop around Part I's train_step() with progress, validation, checkpoints
# and a clean stop on Ctrl-C; the loss curve; views inside the engine and the model;
# a benchmark. It calls Part I's functions and never repeats what they do.
# ======================================================================================
import argparse
import ast
import errno
import gc
import inspect
import json
import os
import re
import shutil
import signal
import stat
import statistics
import sys
import tempfile
import time
import unicodedata


class InputError(ValueError):
    """Bad input (a file, a flag, a checkpoint): printed as one line, exit status 2."""


class OutputError(Exception):
    """The output cannot be written (a full disk, a closed pipe): one line, exit status 1."""


# --- Command line ---------------------------------------------------------------------

# The story's settings and their defaults, read from train_and_sample() itself: each
# flag sets the variable of its name, and the defaults live in one place.
DEFAULTS = {name: p.default for name, p in inspect.signature(train_and_sample).parameters.items()}
SHAPE_FLAGS = ('n_embd', 'n_head', 'n_layer', 'block_size')   # a checkpoint fixes these
TEXT_FLAGS = ('prompt', 'show_attention', 'show_backward', 'gradcheck', 'show_gradients')
MAX_STEPS = 10 ** 9                # about 80 days of steps: any more is a typo
MAX_TOTAL_STEPS = 10 ** 15         # a checkpoint's step, after many continued runs
MAX_INPUT_BYTES = 16 * 2 ** 20     # 16 MB of text, about 1.5 million names
MAX_CHECKPOINT_BYTES = 64 * 2 ** 20
JSON_BYTES_PER_BYTE = 25           # memory per byte of JSON, at most: 3 bytes [], a 64-byte list
CHECKPOINT_FORMAT = 'microgpt checkpoint 1'


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):               # one line and status 2, no usage block
        raise InputError(message)


def parse_args(argv):
    p = ArgumentParser(description='Train a tiny GPT on a list of documents, then sample '
                                   'new ones; or look inside the engine and the model.')
    group = p

    def flag(name, help, shown=None, **kwargs):
        shown = shown or DEFAULTS.get(name[2:], kwargs.get('default'))
        if shown not in (None, ''):
            help += f' (default {shown})'
        group.add_argument(name, help=help, **kwargs)
    group = p.add_argument_group('the data')
    flag('--input', 'text file, one document per line', 'names.txt beside this file',
         metavar='FILE')
    flag('--val_fraction', 'share of documents held out for validation', type=float)
    flag('--seed', 'random seed: the same seed, the same split, weights, losses, samples', type=int)
    group = p.add_argument_group("the model's shape (with --load: the checkpoint's)")
    flag('--n_embd', 'width of the residual stream', type=int)
    flag('--n_head', 'attention heads per layer', type=int)
    flag('--n_layer', 'transformer layers', type=int)
    flag('--block_size', 'longest context in tokens', type=int)
    group = p.add_argument_group('training')
    flag('--num_steps', 'training steps', f'{DEFAULTS["num_steps"]}; 100 with --bench', type=int)
    flag('--batch_size', 'documents per training step', type=int)
    flag('--learning_rate', 'peak Adam learning rate', type=float)
    flag('--warmup_steps', 'steps of linear learning-rate warmup, then a linear decay to 0',
         type=int)
    flag('--weight_decay', 'decoupled weight decay, as AdamW', type=float)
    flag('--eval_docs', 'validation documents per evaluation (0: none)', type=int)
    group = p.add_argument_group('sampling')
    flag('--num_samples', 'documents to sample after training', type=int)
    flag('--temperature', 'sampling temperature, above 0: lower is safer, higher wilder',
         type=float)
    flag('--prompt', 'every sample starts with this text', metavar='TEXT')
    group = p.add_argument_group('the workbench')
    flag('--eval_every', 'steps between validation losses', type=int, default=250)
    flag('--save', 'write a checkpoint here (JSON) during and after training', metavar='PATH')
    flag('--save_every', 'steps between checkpoints (0: only at the end)', '100', type=int)
    flag('--load', 'start from this checkpoint: weights, vocabulary, Adam state', metavar='PATH')
    flag('--bench', 'time the training steps; no sampling', action='store_true')
    group = p.add_argument_group('views inside (after training; of a checkpoint alone: '
                                 '--load PATH --num_steps 0)')
    flag('--show_backward', 'show backward() node by node, on EXPR (e.g. "a = 2; b = -3; '
         'c = a*b + a**2") or, without EXPR, on three examples; then stop', nargs='?',
         const='', metavar='EXPR')
    flag('--gradcheck', "check the model's gradients against finite differences, on one "
         'document (default: the first validation one)', nargs='?', const='', metavar='DOC')
    flag('--show_gradients', "where one document's gradient goes, matrix by matrix and "
         'token by token (default: the first validation one)', nargs='?', const='',
         metavar='DOC')
    flag('--show_embeddings', 'the tokens on a map of their embeddings', action='store_true')
    flag('--show_attention', "draw each head's attention over this text, and what each head "
         'does over the validation documents', metavar='TEXT')
    args = p.parse_args(argv)
    args.given = {name for name in DEFAULTS if getattr(args, name) is not None}
    for name, default in DEFAULTS.items():   # the story's defaults, but for the shape's
        if getattr(args, name) is None and name not in SHAPE_FLAGS + ('num_steps', 'input'):
            setattr(args, name, default)
    if args.num_steps is None:
        args.num_steps = 100 if args.bench else DEFAULTS['num_steps']
    for name in TEXT_FLAGS:
        setattr(args, name, as_text(getattr(args, name), name))
    check_args(args)
    return args


def as_text(text, name):
    """A text flag as the user typed it. Where Python did not know the terminal's
    encoding (LC_ALL=C), non-ASCII letters arrive as surrogates: they are UTF-8 bytes.
    Accents typed as a letter and a combining mark are joined (NFC), as files have them."""
    if text is None:
        return None
    try:
        text = os.fsencode(text).decode('utf-8')
    except (UnicodeError, ValueError):
        raise InputError(f'--{name}: not valid UTF-8 text')
    return unicodedata.normalize('NFC', text)


def check_args(args):
    def at_least(name, low, high=MAX_STEPS):
        value = getattr(args, name)
        if value is not None and not low <= value <= high:
            raise InputError(f'--{name} must be from {low} to {high}, not {value}')
    for name in SHAPE_FLAGS + ('batch_size', 'eval_every'):
        at_least(name, 1)
    for name in ('num_steps', 'warmup_steps', 'eval_docs', 'save_every', 'num_samples'):
        at_least(name, 0)
    for name in ('learning_rate', 'temperature'):
        if not (math.isfinite(getattr(args, name)) and getattr(args, name) > 0):
            raise InputError(f'--{name} must be a positive number, not {getattr(args, name)}')
    if not (math.isfinite(args.weight_decay) and args.weight_decay >= 0):
        raise InputError(f'--weight_decay must be 0 or a positive number, not {args.weight_decay}')
    if args.weight_decay * args.learning_rate >= 1:   # AdamW: w -= lr * weight_decay * w + ...
        raise InputError(f'--weight_decay {args.weight_decay:g} with --learning_rate '
                         f'{args.learning_rate:g} would take each weight past 0 at every step: '
                         f'use a --weight_decay below {1 / args.learning_rate:g}')
    if args.seed < 0:                        # (random.Random(-5) is Random(5): refuse the alias)
        raise InputError(f'--seed must be 0 or more, not {args.seed}')
    if not 0 <= args.val_fraction < 1:
        raise InputError(f'--val_fraction must be at least 0 and below 1, not {args.val_fraction}')
    for name in ('input', 'save', 'load'):
        if getattr(args, name) == '':
            raise InputError(f'--{name} needs a file name, not an empty one')
    if args.bench and (args.num_steps == 0 or args.save):
        raise InputError('--bench times 1 or more training steps, and saves nothing: '
                         'leave out --num_steps 0 and --save')
    if args.save_every is not None and not args.save:
        raise InputError('--save_every needs --save PATH: there is nothing to save to')
    if args.save_every is None:
        args.save_every = 100


def main(argv=None):
    """Run microgpt with command-line flags: main() reads sys.argv, main([...]) a list."""
    notebook = 'ipykernel' in sys.modules
    if argv is None:
        argv = command_line()
    try:
        with readable_output():
            status = run(parse_args(argv))
    except InputError as e:
        if notebook:                         # a notebook shows the error, then goes on
            raise InputError(str(e)) from None
        complain(f'error: {e}')
        leave(2)
    except MemoryError:
        if notebook:
            raise
        complain('error: out of memory; try a smaller model, --batch_size or input file')
        leave(2)
    except OutputError as e:
        complain(f'error: {e}')
        leave(1, quiet=True)
    except BrokenPipeError:                  # `python microgpt.py | head`: end quietly
        leave(141, quiet=True)
    except KeyboardInterrupt:                # Ctrl-C outside training (or twice): stop at once
        if notebook:
            raise
        complain('\ninterrupted')
        leave(130)
    if status and not notebook:              # stopped early by a signal, or a save failed
        leave(status)


def complain(text):
    """One line on stderr, whatever the text holds (a file name with a newline or an
    escape sequence is shown escaped), and even if stderr cannot be written."""
    lead = '\n' if text.startswith('\n') else ''
    try:
        print(lead + text.lstrip('\n').translate(ONE_LINE), file=sys.stderr, flush=True)
    except (OSError, ValueError, AttributeError):   # closed, full, or None
        pass


def command_line():
    # In a notebook, sys.argv is the kernel's own (its launcher, -f and a connection
    # file...): ignore it, unless this file was started by %run microgpt.py --flags.
    return sys.argv[1:] if own_command_line() or 'ipykernel' not in sys.modules else []


def own_command_line():
    """True when this process was started as `python microgpt.py ...` (or %run)."""
    return '__file__' in globals() and os.path.abspath(sys.argv[0]) == os.path.abspath(__file__)


def terminate(signum=None, frame=None):   # SIGTERM outside training: stop now, cleaning up
    raise SystemExit(128 + signal.SIGTERM)


def leave(status, quiet=False):
    if quiet and sys.stdout is not None:    # nothing more to stdout, not even at exit
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
    sys.exit(status)


def run(args):
    """Check everything that can be checked before training, then tell the story with
    the instruments on. Returns the exit status: 0, or 130 / 143 after a Ctrl-C or a
    SIGTERM stopped training early, or 1 when a checkpoint could not be saved."""
    if args.show_backward is not None:       # the engine alone: no data, no model
        print(backward_examples(args.show_backward))
        return 0
    path = args.input or default_input_path()
    docs = read_input(path)                  # read once: the checks and training see one text
    model, docs_seen = read_checkpoint(args.load, args.weight_decay) if args.load else (None, 0)
    if docs_seen is None:                    # (an older checkpoint: as that version read on)
        docs_seen = model.adam.t * args.batch_size
    tokenizer = model.tokenizer if model else Tokenizer(''.join(docs))
    config = check_shape(args, model, tokenizer)
    train_docs, val_docs = split_docs(docs, args.val_fraction, random.Random(args.seed))
    check_texts(args, tokenizer, config, docs, path, val_docs)
    if not train_docs and args.num_steps:
        raise InputError(f'{path!r} has {len(docs)} documents, all held out by --val_fraction '
                         f'{args.val_fraction:g}: none is left to train on')
    check_memory(config, args.batch_size, docs)
    if args.save:
        check_save_path(args.save, path, config)
    if 'warmup_steps' in args.given and 0 < args.num_steps <= args.warmup_steps:
        complain(f'warning: --warmup_steps {args.warmup_steps} is not below --num_steps '
                 f'{args.num_steps}: the learning rate climbs all run, to '
                 f'{args.learning_rate * (args.num_steps / args.warmup_steps):g} at most, '
                 f'and never decays')
    if model:
        print(f'loaded {args.load}: trained for {model.adam.t} steps so far')
    else:                                    # as train_and_sample() builds it
        state_dict = init_state_dict(config, args.seed)
        model = Model(config, tokenizer, state_dict,
                      Adam(parameters(state_dict), args.weight_decay))
    print(f'{len(train_docs)} training and {len(val_docs)} validation documents from {path}\n'
          f'{len(model.adam.params)} parameters: {config}')
    watch = Workbench(args, model, train_docs, val_docs, docs_seen)
    with training_mode(watch):
        watch.train()
        if args.save and not args.num_steps:
            watch.save(0, done=True)
        if args.bench:
            print(bench_report(watch, config))
            return watch.status
        print_samples(args, model, watch)
        print_views(args, model, val_docs)
    return watch.status


def print_samples(args, model, watch):
    """As train_and_sample() samples (the same names), each marked if it is a copy."""
    if not args.num_samples:
        return
    print(f'--- {args.num_samples} samples (temperature {args.temperature:g}) ---')
    rng = random.Random(args.seed)
    samples = []
    for _ in range(args.num_samples):
        samples.append(sample(model.state_dict, model.tokenizer, model.config, rng,
                              args.temperature, args.prompt))
        print(samples[-1] + watch.mark(samples[-1]))
    print(watch.novelty(samples))


def print_views(args, model, val_docs):
    doc = val_docs[0] if val_docs else None
    if args.show_embeddings:
        print(embedding_map(model))
    if args.show_attention is not None:
        print(attention_maps(model, args.show_attention, val_docs))
    for flag, view in (('show_gradients', gradient_map), ('gradcheck', gradient_check)):
        name = getattr(args, flag)
        if name is not None:
            print(view(model, name or doc))


def default_input_path():
    # names.txt beside this file, wherever it is run from. Pasted into a notebook
    # cell there is no __file__, so look in the current folder instead.
    folder = os.path.dirname(os.path.abspath(__file__)) if '__file__' in globals() else os.getcwd()
    return os.path.join(folder, 'names.txt')


# --- Checks before training -----------------------------------------------------------

def read_file(path, what, max_bytes):
    """The bytes of a regular file of at most max_bytes, or one line saying why not:
    a FIFO or a device would hang or never end; a file in /proc says it has 0 bytes
    and may have more, or block. Opened without blocking, then checked, then read."""
    too_big = (f'{what} {path!r} has more than {max_bytes // 2 ** 20} MB; '
               f'microgpt reads at most {max_bytes // 2 ** 20} MB')
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NONBLOCK', 0))
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
            os.close(fd)
            hint = ('; save the data to a file first' if stat.S_ISFIFO(info.st_mode)
                    or stat.S_ISCHR(info.st_mode) else '')
            raise InputError(too_big if stat.S_ISREG(info.st_mode)
                             else f'{what} {path!r} is not a regular file{hint}')
        with os.fdopen(fd, 'rb') as f:
            data = f.read(max_bytes + 1)
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f'{what} {path!r} not found')
    except (OSError, ValueError) as e:       # (ValueError: a NUL in the name)
        raise InputError(f'cannot read {what} {path!r}: {getattr(e, "strerror", None) or e}')
    if data is None:                         # (a file that would make a read wait)
        raise InputError(f'cannot read {what} {path!r} without waiting; copy it to a file')
    if len(data) > max_bytes:
        raise InputError(too_big)
    return data


def read_input(path):
    """The documents of the input file, read once, after the checks that Part I's
    load_docs() leaves out, each with its own message."""
    data = read_file(path, 'input file', MAX_INPUT_BYTES)
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as e:          # (e.start counts from the start of the file)
        line = len((data[:e.start] + b'.').splitlines())   # (\n, \r\n or \r: a new line)
        raise InputError(f'input file {path!r} is not UTF-8 text: byte 0x{data[e.start]:02x} '
                         f'at offset {e.start} (line {line})')
    docs = load_docs(text.replace('\ufeff', ''))   # (a byte-order mark, even where two
    if not docs:                             # files were joined, says how, not what)
        raise InputError(f'input file {path!r} is empty: it needs one document per line')
    return docs


def check_shape(args, model, tokenizer):
    """The model's GPTConfig: the checkpoint's, or the flags' (or their defaults)."""
    if model:
        for name in SHAPE_FLAGS:
            given = getattr(args, name)
            if given is not None and given != getattr(model.config, name):
                raise InputError(f"--{name} {given} differs from the checkpoint's {name} "
                                 f'{getattr(model.config, name)}; leave it out when you --load')
        return model.config
    shape = {name: DEFAULTS[name] if getattr(args, name) is None else getattr(args, name)
             for name in SHAPE_FLAGS}
    for name, value in shape.items():
        setattr(args, name, value)
    n_embd, n_head = shape['n_embd'], shape['n_head']
    if n_embd % n_head:
        raise InputError(f'--n_embd {n_embd} is not divisible by --n_head {n_head}')
    return GPTConfig(tokenizer.vocab_size, *shape.values())


def check_texts(args, tokenizer, config, docs, path, val_docs):
    """Every character the run will encode is in the vocabulary; the prompt and the
    attention text fit in block_size; the views have a document. Checked now, not
    after training."""
    if args.num_steps:
        unknown = set(''.join(docs)) - set(tokenizer.chars)
        if unknown:
            raise InputError(f'{path!r}: {describe(min(unknown))} is not in the checkpoint\'s '
                             f'vocabulary (it was trained on other characters)')
    block_size = config.block_size
    for flag, most in (('prompt', block_size), ('show_attention', block_size - 1),
                       ('gradcheck', block_size), ('show_gradients', block_size)):
        text = getattr(args, flag) or ''
        unknown = [ch for ch in text if ch not in tokenizer.ids]
        if unknown:
            raise InputError(f'--{flag} {text!r}: {describe(unknown[0])} is not in the '
                             f'vocabulary')
        if len(text) > most:
            raise InputError(f'--{flag} has {len(text)} characters; at most {most} fit in '
                             f'--block_size {block_size}')
    if (args.gradcheck == '' or args.show_gradients == '') and not val_docs:
        raise InputError('--gradcheck and --show_gradients need a document: give one, '
                         'or keep a validation set (--val_fraction)')


def describe(ch):
    """A character as a message shows it: 'é', or its name where it is invisible
    alone ('\\u0301' COMBINING ACUTE ACCENT)."""
    name = unicodedata.name(ch, '')
    if unicodedata.category(ch)[0] in 'MCZ' or not ch.isprintable():
        return f'character {ch!r} ({name or "U+%04X" % ord(ch)})'
    return f'character {ch!r}'


# Memory. A step's graph is freed before the next one is built, so training needs
# the parameters (with Adam's m and v), one step's graph and the documents. The graph
# is estimated from matrix_shapes(): at each position every matrix is read through dot
# products, a node per row with two children per column (but wpe: a position reads one
# row of it); the other ops (norms, adds, softmax, squared ReLU) add about 11 nodes
# and 20 children per number of n_embd and layer; attention's dot products over the
# positions so far add 6 nodes per head and 4 * n_embd children per earlier position
# and layer. Within 7% of real graphs of 8 shapes (the tests check 10%); it follows
# matrix_shapes() if a learner changes the matrices. Bytes per node and edge: fitted
# within 10% to a real step's peak (tracemalloc, CPython 3.11, 7 shapes) by 202 and
# 20.5; per parameter, with Adam's m and v, 213. With a margin:
BYTES_PER_NODE, BYTES_PER_EDGE, BYTES_PER_PARAM = 240, 25, 250


def matrix_totals(config):
    """(rows, numbers) of all the model's matrices, from matrix_shapes(): the matrices
    outside the layers, plus n_layer times one layer's (not listing a billion layers)."""
    def totals(n_layer):
        shapes = matrix_shapes(config._replace(n_layer=n_layer)).values()
        return sum(r for r, _ in shapes), sum(r * c for r, c in shapes)
    (rows0, numbers0), (rows1, numbers1) = totals(0), totals(1)
    return (rows0 + config.n_layer * (rows1 - rows0),
            numbers0 + config.n_layer * (numbers1 - numbers0))


def graph_size_estimate(config, positions):
    """(nodes, edges) of doc_loss()'s graph for a document of `positions` positions."""
    rows, weights = matrix_totals(config)
    rows, weights = rows - config.block_size, weights - config.block_size * config.n_embd
    n, layers = config.n_embd, config.n_layer
    pairs = positions * (positions + 1) // 2           # (position, earlier position)
    nodes = positions * (rows + 11 * n * layers) + 6 * config.n_head * layers * pairs
    edges = positions * (2 * weights + 20 * n * layers) + 4 * n * layers * pairs
    return nodes, edges


def parameter_count(config):
    """As len(parameters(init_state_dict(config))), without building anything."""
    return matrix_totals(config)[1]


def estimate_memory(config, batch_size, docs):
    """Bytes that training needs at most: the parameters, one step's graph for
    batch_size of the longest documents (as the model reads them: at most block_size
    positions), and the documents themselves."""
    longest = max(map(len, docs), default=0)
    nodes, edges = graph_size_estimate(config, min(longest + 1, config.block_size))
    text = sum(100 + len(doc) for doc in docs)
    graph = BYTES_PER_NODE * nodes + BYTES_PER_EDGE * edges
    return BYTES_PER_PARAM * parameter_count(config) + batch_size * graph + 3 * text


def available_memory():
    """Bytes of memory this process could still use, or None where unknown: the
    least of the machine's available memory, its container's (cgroup) limit, and
    this process's address-space limit (ulimit -v), less what each has in use."""
    found = []
    try:
        with open('/proc/meminfo') as f:           # (Linux)
            line = next(line for line in f if line.startswith('MemAvailable:'))
        found.append(int(line.split()[1]) * 1024)
    except (OSError, StopIteration, ValueError, IndexError):
        try:
            found.append(os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE'))
        except (ValueError, OSError, AttributeError):
            pass
    try:
        with open('/sys/fs/cgroup/memory.max') as f, open('/sys/fs/cgroup/memory.current') as g:
            found.append(int(f.read()) - int(g.read()))    # ('max': no limit, a ValueError)
    except (OSError, ValueError):
        pass
    try:
        import resource                                    # (Unix)
        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit != resource.RLIM_INFINITY:
            with open('/proc/self/statm') as f:            # (Linux: pages of address space)
                used = int(f.read().split()[0]) * os.sysconf('SC_PAGE_SIZE')
            found.append(limit - used)
    except (ImportError, OSError, ValueError, IndexError, AttributeError):
        pass
    return max(0, min(found)) if found else None


def in_units(size):
    """A number of bytes for a message: '1.5 GB', '230 MB', '12 kB'."""
    for unit, scale in (('GB', 2 ** 30), ('MB', 2 ** 20), ('kB', 2 ** 10)):
        if size >= scale:
            return f'{size / scale:,.1f} {unit}' if size < 10 * scale else f'{size / scale:,.0f} {unit}'
    return f'{size} bytes'


def check_memory(config, batch_size, docs):
    need, have = estimate_memory(config, batch_size, docs), available_memory()
    if have is not None and need > have:
        raise InputError(f'training this model needs about {in_units(need)} of memory '
                         f'({config.vocab_size} tokens, n_embd {config.n_embd}, n_layer '
                         f'{config.n_layer}, block_size {config.block_size}, batch_size '
                         f'{batch_size}); this process can use {in_units(have)}')


def check_save_path(path, input_path, config):
    """Refuse, before training, a checkpoint path that the save would fail on or that
    holds something else: a folder, a device, a file that is not a microgpt checkpoint
    (the training data, this program, the file this run's output goes to...), a file
    this user could not replace; or a checkpoint too large to load back or to fit."""
    if path.endswith(os.sep) or (os.altsep and path.endswith(os.altsep)):
        raise InputError(f'--save {path!r} ends with {path[-1]}, as a folder does; '
                         f'give the file name to save to')
    target = os.path.realpath(path)          # through a symlink, to the file it names
    folder = os.path.dirname(target)
    exists = os.path.exists(target)
    if exists:
        info = os.stat(target)
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f'--save {path!r} is not a regular file; refusing to replace it')
        if os.path.samefile(target, input_path):
            raise InputError(f'--save {path!r} is the training data; save elsewhere')
        for fd, name in ((1, 'output'), (2, 'error output')):
            try:
                same = os.path.samestat(info, os.fstat(fd))
            except OSError:
                same = False
            if same:
                raise InputError(f"--save {path!r} is where this run's {name} goes; save elsewhere")
        if info.st_size and not is_checkpoint(target):
            raise InputError(f'--save {path!r} exists and is not a microgpt checkpoint; refusing '
                             f'to replace it: remove it first, or save elsewhere')
        if not os.access(target, os.W_OK) or not info.st_mode & 0o222:
            raise InputError(f'--save {path!r} is read-only; refusing to replace it')
        if os.path.ismount(target):          # (a file mounted there cannot be renamed over)
            raise InputError(f'--save {path!r} is a mount point; save elsewhere')
        folder_info = os.stat(folder)        # a sticky folder (/tmp): only the file's owner,
        uid = getattr(os, 'geteuid', lambda: 0)()   # the folder's or root may replace it
        if folder_info.st_mode & stat.S_ISVTX and uid not in (0, info.st_uid, folder_info.st_uid):
            raise InputError(f'--save {path!r} belongs to another user in a shared folder; '
                             f'save elsewhere')
    size = checkpoint_bytes(config)
    if size > MAX_CHECKPOINT_BYTES:
        raise InputError(f'a checkpoint of this model would have about {in_units(size)}; '
                         f'microgpt loads at most {MAX_CHECKPOINT_BYTES // 2 ** 20} MB')
    try:                                     # the one sure test: make a file there, named as
        with temporary_file_for(target) as f:   # the save will name it
            pass
        os.remove(f.name)
        free = shutil.disk_usage(folder).free
    except OSError as e:
        raise InputError(f'cannot write checkpoint {path!r}: {e.strerror or e}')
    need = 2 * size - (os.path.getsize(target) if exists else 0)   # the new copy beside the old
    if free < need:
        raise InputError(f'checkpoints of this model need about {in_units(need)} (a new one is '
                         f'written beside the old, then replaces it); {folder!r} has '
                         f'{in_units(free)} free')


def is_checkpoint(path):
    """Whether the file at path starts as save_checkpoint() writes one."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NONBLOCK', 0))
        with os.fdopen(fd, 'rb') as f:
            head = f.read(200) or b''
    except OSError:
        return False
    return re.match(rb'\s*\{\s*"format"\s*:\s*"microgpt checkpoint', head) is not None


def checkpoint_bytes(config):
    """About the size of save_checkpoint()'s file: 3 numbers a parameter (its weight,
    Adam's m and v), up to 25 characters each as JSON, like -0.012345678901234567, ."""
    return 3 * 25 * parameter_count(config) + 10 * config.vocab_size + 1000


# --- Training, watched ----------------------------------------------------------------

class Workbench:
    """Trains the model with Part I's train_step(), as train() does, and watches: the
    progress, the validation schedule, checkpoints, a clean stop on Ctrl-C or SIGTERM,
    and at the end the loss curve. A continued run reads on from docs_seen, the
    documents its checkpoint had trained on."""

    def __init__(self, args, model, train_docs, val_docs, docs_seen=0):
        self.args, self.model, self.docs_seen = args, model, docs_seen
        # doc_loss() reads at most block_size characters of a document: the rest of a
        # long line need not be encoded at every step
        crop = model.config.block_size
        self.train_docs = [doc[:crop] for doc in train_docs]
        self.eval_docs = [] if args.bench else [doc[:crop] for doc in val_docs[:args.eval_docs]]
        self.train_set, self.val_set = set(train_docs), set(val_docs)   # (for the samples)
        self.stop_requested, self.over, self.status, self.graphs = None, False, 0, []
        self.history = {'train': [], 'val': [], 'ms': []}  # loss per step; (step, val loss); ms
        self.progress = Progress(in_place=output_is_live())
        self.saved_step = None                 # the step of the last good checkpoint

    def train(self):
        args, model, docs = self.args, self.model, self.train_docs
        if args.num_steps:
            self.report_val(0)
        B = args.batch_size
        for step in range(1, args.num_steps + 1):
            first = self.docs_seen
            batch = [docs[(first + b) % len(docs)] for b in range(B)]
            lr = lr_at(step - 1, args.num_steps, args.learning_rate, args.warmup_steps)
            started = time.perf_counter()
            loss = train_step(model, batch, lr)
            ms = (time.perf_counter() - started) * 1000
            self.docs_seen += B
            if args.bench and step % 10 == 1:   # (not every step: counting slows the next)
                self.graphs.append(graph_size(loss))
            loss = loss.data                     # (the number: this step's graph can go)
            self.after_step(step, loss, lr, ms)
            if self.stop_requested:
                break
        self.over = True                         # from now on a signal stops at once

    def after_step(self, step, loss, lr, ms):
        args = self.args
        self.history['train'].append(loss)
        self.history['ms'].append(ms)
        self.progress.step(f'step {step}/{args.num_steps} | loss {loss:.4f} | '
                           f'lr {lr:.1e} | {ms:.1f} ms')
        if not math.isfinite(loss):
            raise self.diverged(f'the loss became {loss} at step {step}')
        done = step == args.num_steps or self.stop_requested
        if done and self.stop_requested:
            self.progress.line(f'interrupted: stopped after step {step}')
        if args.save and (done or args.save_every and step % args.save_every == 0):
            self.save(step, done)
        if not self.stop_requested and (done or step % args.eval_every == 0):
            self.report_val(step)
        if done:
            problem = unusable(self.model)       # (the last step's update is in no loss yet)
            if problem:
                raise self.diverged(f'{problem} at step {step}')
            self.finish()

    def report_val(self, step):
        """The mean loss on the validation documents (held out from training)."""
        if not self.eval_docs:
            return
        config, tokenizer, state_dict, _ = self.model
        total = 0.0
        for doc in self.eval_docs:
            if self.stop_requested:              # Ctrl-C: stop now, not after 3000 documents
                return
            total += doc_loss(tokenizer.encode_doc(doc), state_dict, config).data
        loss = total / len(self.eval_docs)
        if not math.isfinite(loss):
            raise self.diverged(f'the validation loss became {loss} at step {step}')
        self.history['val'].append((step, loss))
        self.progress.line(f'step {step}/{self.args.num_steps} | val loss {loss:.4f} '
                           f'({len(self.eval_docs)} docs)')

    def save(self, step, done):
        """A checkpoint, never one that could not be loaded back. A save that fails
        late is said, and the run goes on: the last good checkpoint stays."""
        problem = unusable(self.model)
        if problem:
            raise self.diverged(f'{problem} at step {step}')
        try:
            save_checkpoint(self.args.save, self.model, self.docs_seen)
        except InputError as e:                  # (it says the file there is unchanged)
            self.progress.end()
            kept = f': step {self.saved_step}' if self.saved_step is not None else ''
            complain(f'warning: {str(e)[:-1]}{kept}); training goes on')
            self.status = 1
            return
        self.saved_step = self.model.adam.t
        if done:
            self.progress.line(f'saved checkpoint {self.args.save} (step {self.model.adam.t})')

    def mark(self, doc):
        """A sample's place in the data: new (''), or a document the run had."""
        if doc in self.train_set:
            return '   (in the training data)'
        if doc in self.val_set:
            return '   (in the validation data: real, and never trained on)'
        return ''

    def novelty(self, samples):
        copied = sum(doc in self.train_set for doc in samples)
        held_out = sum(doc in self.val_set and doc not in self.train_set for doc in samples)
        return (f'{len(samples) - copied - held_out} of {len(samples)} samples are new; '
                f'{copied} in the training data, {held_out} in the validation data')

    def finish(self):
        self.over = True
        self.progress.end()
        if self.args.bench:
            return
        print(loss_curve(self.history))
        print(summary(self.history))
        warning = divergence_warning(self.history, self.model.config.vocab_size)
        if warning:
            complain(f'warning: {warning}; {self.hint()}')

    def hint(self):                          # (a weight decay too large is refused before)
        return f'try a smaller --learning_rate than {self.args.learning_rate:g}'

    def diverged(self, what):
        self.progress.end()
        return InputError(f'{what}; {self.hint()}')


def divergence_warning(history, vocab_size):
    """A run whose loss ended higher than it started and above a uniform guess,
    ln(vocab_size), diverged, even if every number stayed finite."""
    losses = history['train']
    tenth = max(1, len(losses) // 10)
    first, final = sum(losses[:tenth]) / tenth, sum(losses[-tenth:]) / tenth
    uniform = math.log(vocab_size)
    if losses and final > max(first, uniform + 0.5):
        return (f'training diverged: the loss ended at {final:.4g}, worse than at its start '
                f'({first:.4g}) and than a uniform guess ({uniform:.2f})')
    return None


class training_mode:
    """While the story runs: Ctrl-C (SIGINT) and SIGTERM ask the watcher to stop after
    the current step; a second one, or one after training (while sampling), stops at
    once (Ctrl-C as KeyboardInterrupt, SIGTERM as SystemExit(143)). And CPython's
    cyclic garbage collector is paused. A step's graph is tens of thousands of
    short-lived Values with no reference cycles: reference counting frees them all,
    and the collector would only scan them again and again, for nothing (about 15% of
    a step). PyPy has no reference counting: its collector must run."""

    def __init__(self, watch):
        self.watch, self.old = watch, {}

    def on_signal(self, signum, frame):
        if self.watch.stop_requested or self.watch.over:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            terminate()
        self.watch.stop_requested = signum
        self.watch.status = 128 + signum     # the run ends as a stopped one: 130 or 143

    def __enter__(self):
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self.old[signum] = signal.signal(signum, self.on_signal)
            except ValueError:               # only the main thread may catch signals
                pass
        self.gc_was_enabled = gc.isenabled()
        if sys.implementation.name == 'cpython':
            gc.disable()

    def __exit__(self, *exc):
        for signum, handler in self.old.items():
            signal.signal(signum, handler)
        if self.gc_was_enabled:
            gc.enable()
        if isinstance(exc[1], (OverflowError, ZeroDivisionError)) and not self.watch.over:
            steps = len(self.watch.history['train'])     # (a ** or an exp overflowed)
            raise self.watch.diverged(f'the numbers overflowed at step {steps + 1}') from None


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

    def line(self, text):                   # a line that stays
        self.end()
        print(text, flush=True)

    def end(self):
        if self.open:
            print(flush=True)
            self.open = False


def output_is_live():
    """True on a terminal or in a notebook, where a line can be rewritten."""
    stream = sys.__stdout__
    return 'ipykernel' in sys.modules or bool(stream and stream.isatty())


class readable_output:   # (a context manager, used as: with readable_output(): ...)
    """For the time of main(): stdout shows control characters (ESC, BEL, ... found in
    a training file) as \\x1b, \\x07, ... instead of sending them to the terminal, prints
    any character whatever the console's encoding, and turns a failed write (a full
    disk) into OutputError. A closed pipe stays a BrokenPipeError."""
    CONTROLS = {c: f'\\x{c:02x}' for c in [*range(32), *range(127, 160)] if chr(c) not in '\n\r\t'}

    def __enter__(self):
        self.stdout = sys.stdout
        if self.stdout is not None:          # (None: started with stdout closed)
            if hasattr(self.stdout, 'reconfigure'):
                self.stdout.reconfigure(errors='backslashreplace')
            sys.stdout = self

    def __exit__(self, *exc):
        sys.stdout = self.stdout

    def write(self, text):
        return self.guard(self.stdout.write, text.translate(self.CONTROLS))

    def flush(self):
        return self.guard(self.stdout.flush)

    def guard(self, f, *args):
        try:
            return f(*args)
        except BrokenPipeError:
            raise
        except OSError as e:
            raise OutputError(f'cannot write the output: {e.strerror or e}') from None

    def __getattr__(self, name):             # the rest (isatty, encoding, ...): stdout's
        return getattr(self.stdout, name)


ONE_LINE = {**readable_output.CONTROLS, ord('\n'): '\\n', ord('\r'): '\\r'}   # for messages


# --- Checkpoints: a JSON file (readable, and safe to load, unlike pickle) --------------

def unusable(model):
    """Why model cannot be saved or loaded, or None: an infinite or nan number, or
    weights beyond 1e6. (Adam moves a weight about learning_rate a step; with inputs
    rescaled by rmsnorm, a weight of 1e6 means training diverged long ago.)"""
    numbers = [p.data for p in model.adam.params] + model.adam.m + model.adam.v
    if not all(map(math.isfinite, numbers)):
        return 'the weights or Adam state became infinite or nan'
    if max(abs(p.data) for p in model.adam.params) > 1e6:
        return 'the weights grew beyond 1e6'
    return None


def save_checkpoint(path, model, docs_seen=None):
    """Write model to path, atomically: a temporary file beside the target, flushed
    to the disk, then renamed over it in one step. An interrupted or failed save
    leaves the old checkpoint as it was and no temporary file (and one killed
    outright leaves one the next save clears). A model that could not be loaded back
    is never written. docs_seen: the documents trained on, where a continued run
    reads on from."""
    problem = unusable(model)
    if problem:
        raise InputError(f'{problem}: checkpoint {path!r} not written')
    config = model.config._asdict()
    del config['vocab_size']                 # (the vocabulary is in 'chars')
    checkpoint = {'format': CHECKPOINT_FORMAT, 'config': config,
                  'chars': model.tokenizer.chars, 'step': model.adam.t,
                  'adam_m': model.adam.m, 'adam_v': model.adam.v,
                  'state_dict': {name: [[p.data for p in row] for row in matrix]
                                 for name, matrix in model.state_dict.items()}}
    if docs_seen is not None:
        checkpoint['docs_seen'] = docs_seen
    target = os.path.realpath(path)          # through a symlink: replace the file it names
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)     # keep the file's permissions,
    except OSError:
        mode = 0o666 & ~current_umask()                  # or give a new file the usual ones
    text = json.dumps(checkpoint)
    if len(text) > MAX_CHECKPOINT_BYTES:     # (a vocabulary of 1e6 characters, say)
        most = MAX_CHECKPOINT_BYTES // 2 ** 20
        raise InputError(f'checkpoint {path!r} would have {len(text) / 2 ** 20:.0f} MB, more '
                         f'than the {most} MB a load accepts: not written')
    remove_stale_temporaries(target)
    tmp = None
    try:
        with temporary_file_for(target) as f:
            tmp = f.name
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
        tmp = None
    except OSError as e:
        raise InputError(f'cannot write checkpoint {path!r}: {e.strerror or e} '
                         f'(the file there is unchanged)')
    finally:
        if tmp is not None:                   # any failure, Ctrl-C included: no litter
            try:
                os.remove(tmp)
            except OSError:
                pass


def temporary_file_for(target):
    """target.<process id>.<random>.tmp, beside target: the process id tells whose it is."""
    return tempfile.NamedTemporaryFile('w', dir=os.path.dirname(target), delete=False,
                                       prefix=f'{os.path.basename(target)}.{os.getpid()}.',
                                       suffix='.tmp')


def remove_stale_temporaries(target):
    """Remove what a save of target killed outright (kill -9, a power cut) left: its
    temporary files whose process is gone. A running save's file is left alone."""
    folder, name = os.path.split(target)
    pattern = re.compile(re.escape(name) + r'\.(\d+)\.[a-z0-9_]{8}\.tmp')
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for found in names:
        m = pattern.fullmatch(found)
        if m and not process_is_running(int(m.group(1))):
            try:
                os.remove(os.path.join(folder, found))
            except OSError:
                pass


def process_is_running(pid):
    if pid == os.getpid():
        return False                          # (ours, from a save interrupted before)
    try:
        os.kill(pid, 0)                       # (signal 0: only asks whether pid exists)
    except ProcessLookupError:
        return False
    except (OSError, ValueError, OverflowError):
        return True                           # (another user's process, or cannot tell)
    return True


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load_checkpoint(path, weight_decay=0.0):
    """A Model from save_checkpoint's file, every part of it checked first: a damaged
    or hostile file gets one line, before anything large is built."""
    return read_checkpoint(path, weight_decay)[0]


def read_checkpoint(path, weight_decay=0.0):
    """(Model, the number of documents it was trained on, or None if not kept)."""
    data = read_file(path, 'checkpoint', MAX_CHECKPOINT_BYTES)
    need, have = JSON_BYTES_PER_BYTE * len(data), available_memory()   # ([[],[],[],...]: a bomb)
    if have is not None and need > have:
        raise InputError(f'checkpoint {path!r} has {in_units(len(data))}; reading it could take '
                         f'{in_units(need)} of memory, more than is available')
    try:
        ck = json.loads(data.decode('utf-8'))
    except (ValueError, RecursionError, MemoryError) as e:
        raise InputError(f'checkpoint {path!r} is damaged or not a checkpoint ({type(e).__name__})')
    remove_stale_temporaries(os.path.realpath(path))
    try:
        return model_from_checkpoint(ck, weight_decay)
    except CheckpointError as e:
        raise InputError(f'checkpoint {path!r} is damaged or not a microgpt checkpoint: {e}')


class CheckpointError(ValueError):
    """What is wrong in a checkpoint, in the checkpoint's own words ('config', ...)."""


def field(ck, key, kind):
    """ck[key], checked to be a kind (list, dict, int, str)."""
    if not isinstance(ck, dict) or key not in ck:
        raise CheckpointError(f'no {key!r}')
    if not isinstance(ck[key], kind) or isinstance(ck[key], bool):
        raise CheckpointError(f'{key!r} is not a{"n" if kind is int else ""} '
                              f'{ {list: "list", dict: "object", int: "integer", str: "text"}[kind] }')
    return ck[key]


def model_from_checkpoint(ck, weight_decay):
    if field(ck, 'format', str) != CHECKPOINT_FORMAT:
        raise CheckpointError(f"its 'format' is not {CHECKPOINT_FORMAT!r}")
    chars = field(ck, 'chars', list)
    if not (all(isinstance(ch, str) and len(ch) == 1 for ch in chars)
            and chars == sorted(set(chars)) and '\n' not in chars and '\r' not in chars):
        raise CheckpointError("'chars' is not a sorted list of distinct characters")
    config = field(ck, 'config', dict)
    shape = [field(config, name, int) for name in SHAPE_FLAGS]
    if not all(1 <= v <= MAX_STEPS for v in shape) or shape[0] % shape[1]:
        raise CheckpointError(f"its 'config' is not a model's shape: {config}")
    config = GPTConfig(len(chars) + 2, *shape)
    have = available_memory()
    if have is not None and estimate_memory(config, 1, []) > have:
        raise CheckpointError(f'a model of this shape ({config}) would not fit in memory')
    shapes, matrices = matrix_shapes(config), field(ck, 'state_dict', dict)
    if list(matrices) != list(shapes):
        raise CheckpointError(f"its 'state_dict' has not the matrices of {config}")
    state_dict = {}
    for name, (n_out, n_in) in shapes.items():
        matrix = field(matrices, name, list)
        if len(matrix) != n_out or any(not isinstance(row, list) or len(row) != n_in
                                       for row in matrix):
            raise CheckpointError(f'{name} is not a {n_out} x {n_in} matrix')
        state_dict[name] = [[Value(finite(x, name)) for x in row] for row in matrix]
    adam = Adam(parameters(state_dict), weight_decay)
    adam.m = [finite(x, 'adam_m') for x in field(ck, 'adam_m', list)]
    adam.v = [finite(x, 'adam_v') for x in field(ck, 'adam_v', list)]
    adam.t = field(ck, 'step', int)
    if not len(adam.m) == len(adam.v) == len(adam.params) or min(adam.v, default=0) < 0:
        raise CheckpointError("'adam_m' and 'adam_v' are not Adam's state for these weights")
    if not 0 <= adam.t <= MAX_TOTAL_STEPS:
        raise CheckpointError(f"its 'step' is not from 0 to {MAX_TOTAL_STEPS}")
    docs_seen = ck.get('docs_seen')          # (None in a checkpoint from before it was kept)
    if docs_seen is not None and (type(docs_seen) is not int or docs_seen < 0):
        raise CheckpointError("its 'docs_seen' is not a count of documents")
    model = Model(config, Tokenizer(''.join(chars)), state_dict, adam)
    problem = unusable(model)
    if problem:
        raise CheckpointError(problem)
    return model, docs_seen


def finite(x, where):
    try:
        number = float(x) if type(x) in (int, float) else math.nan
    except OverflowError:                     # (an integer of 400 digits)
        number = math.nan
    if not math.isfinite(number):
        raise CheckpointError(f'{where} holds {repr(x)[:20]}, not a finite number')
    return number


# --- Loss curve: drawn with plain characters ------------------------------------------

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
    lines += [f'{hi - r * (hi - lo) / (height - 1):6.2f} |' + ''.join(row)
              for r, row in enumerate(grid)]
    lines.append('       +' + '-' * width)
    last = f'{n} steps'
    lines.append('        0' + last.rjust(max(width - 1, len(last) + 1)))
    return '\n'.join(lines)


def summary(history):
    """One line: the final training loss (a mean over the last tenth of the steps,
    as one step's loss is noisy), the last validation loss and its step, the speed."""
    losses, ms = history['train'], history['ms']
    recent = losses[-max(1, len(losses) // 10):]
    line = (f'after {len(losses)} steps: train loss {sum(recent) / len(recent):.4f} '
            f'(mean of the last {len(recent)})')
    if history['val']:
        step, loss = history['val'][-1]
        line += f', val loss {loss:.4f}' + (f' (at step {step})' if step != len(losses) else '')
    return line + f', {statistics.median(ms):.1f} ms per step (median)'


# --- Attention maps: what each head looks at ------------------------------------------

def attention_weights(model, text):
    """Every attention head's weights over <BOS> + text: [position][layer][head], a
    list of weights over the positions so far, from gpt()'s weights_seen."""
    config, tokens = model.config, [Tokenizer.BOS] + model.tokenizer.encode(text)
    cache = [([], []) for _ in range(config.n_layer)]
    weights = []
    for pos, token_id in enumerate(tokens):
        seen = []                            # layer by layer, head by head
        gpt(token_id, pos, cache, model.state_dict, config, seen)
        weights.append([seen[layer * config.n_head:(layer + 1) * config.n_head]
                        for layer in range(config.n_layer)])
    return weights


def head_roles(model, docs):
    """What each head does, measured over docs (held-out documents): the share of its
    attention that goes to <BOS>, to the previous token, to the token itself, on
    average over the positions from 2 on (where the three are different positions).
    {(layer, head): (label, share)}: the label of the largest share if it is at
    least half, else 'spread out' and the largest share."""
    totals, count = {}, 0
    for doc in docs:
        weights = attention_weights(model, doc[:model.config.block_size - 1])
        for pos in range(2, len(weights)):
            count += 1
            for layer, heads in enumerate(weights[pos]):
                for head, w in enumerate(heads):
                    shares = totals.setdefault((layer, head), [0.0, 0.0, 0.0])
                    for i, share in enumerate((w[0], w[pos - 1], w[pos])):
                        shares[i] += share
    roles = {}
    for key, shares in totals.items():
        best = max(range(3), key=lambda i: shares[i])
        share = shares[best] / count
        roles[key] = (('<BOS>', 'the previous token', 'the token itself')[best]
                      if share >= 0.5 else 'spread out', share)
    return roles


def attention_maps(model, text, docs=()):
    """For each layer and head, a character heat map of the attention weights over text:
    row = the position reading, column = the position read (darker = more weight); and
    what the head does over docs (up to 200 of them), if any are given."""
    config, weights = model.config, attention_weights(model, text)
    roles = head_roles(model, docs[:200]) if docs else {}
    labels, shades = '^' + text, ' .:-=+*#%@'   # ^ is <BOS>; weight 0-0.1 is ' ', ..., 0.9-1 '@'
    out = [f'attention over {text!r} '
           f'(^ is <BOS>; rows read, columns are read; darker = more weight)']
    for layer in range(config.n_layer):
        for head in range(config.n_head):
            title = f'layer {layer} head {head}'
            if (layer, head) in roles:
                role, share = roles[layer, head]
                title += (f': {role} ({share:.0%} of its weight, over '
                          f'{min(len(docs), 200)} validation documents)')
                if role == 'spread out':
                    title = title.replace(' of its weight', ' at most to one of <BOS>, '
                                          'the previous token, itself')
            out += [title, '   ' + labels]
            for pos in range(len(labels)):
                row = weights[pos][layer][head]
                shaded = (shades[min(int(w * 10), 9)] if w == w else '?' for w in row)   # (nan: ?)
                out.append(f' {labels[pos]} ' + ''.join(shaded))
    return '\n'.join(out)


# --- Views: the gradients flowing -----------------------------------------------------

def backward_table(root, **names):
    """backward() from root, node by node, in the order it visits them: each node's op,
    value and gradient, and what it passes to each child (its local derivative times
    its gradient), so that every line can be redone with pencil and paper. names:
    {name: Value} for the Values to call by name; the others are #1, #2, ... in the
    order they were made (inputs: in1, in2, ...). Runs root.backward() if not yet run."""
    if not root.grad:
        root.backward()
    order = list(reversed(topological_order(root)))          # as backward() visits them
    label = {id(v): name for name, v in names.items() if isinstance(v, Value)}
    made = sorted(order, key=lambda v: v.number)
    for i, node in enumerate(made, start=1):
        label.setdefault(id(node), f'#{i}')
    inputs = []
    for node in made:
        for child in node.children:
            if not child.children and id(child) not in label:
                label[id(child)] = f'in{len(inputs) + 1}'
            if not child.children and child not in inputs:
                inputs.append(child)
    rows = [f'backward() from {label[id(root)]}: the nodes in the order it visits them; '
            f'grad = d {label[id(root)]} / d node',
            f'  {"node":<6} {"op":<8} {"value":>10} {"grad":>10}   passes on: child += local '
            f'grad x grad']
    for node in order:
        passes = ', '.join(f'{label[id(c)]} += {g:.6g} x {node.grad:.6g} = {g * node.grad:.6g}'
                           for c, g in zip(node.children, node.local_grads))
        op = node.op
        if op == '+' and len(node.children) == 1:            # a + c: show the constant c
            op = f'+ {node.data - node.children[0].data:.6g}'
        rows.append(f'  {label[id(node)]:<6} {op:<8} {node.data:>10.6g} {node.grad:>10.6g}'
                    f'   {passes}')
    rows.append('inputs: ' + ', '.join(f'{label[id(v)]} = {v.data:.6g} (grad {v.grad:.6g})'
                                       for v in inputs))
    return '\n'.join(rows)


BACKWARD_EXAMPLES = [
    'a = 2; b = -3; c = a*b + a**2',
    'z1 = 1; z2 = 2; z3 = 3; p1 = softmax(z1, z2, z3)[0]',
    'x1 = 3; x2 = 4; y1 = rmsnorm(x1, x2)[0]',
]


def backward_examples(text=''):
    """backward_table() of a typed computation, or of the three examples."""
    tables = []
    for source in [text] if text else BACKWARD_EXAMPLES:
        root, names = evaluate(source)
        tables.append(f'>>> {source}\n' + backward_table(root, **names))
    return '\n\n'.join(tables)


def evaluate(source):
    """(the last Value, {name: Value}) of a small computation such as 'a = 2; b = -3;
    c = a*b + a**2': numbers, names, + - * / **, exp(), log(), relu(), softmax(...)[i]
    and rmsnorm(...)[i], one statement after another. Read with Python's parser, then
    computed here node by node: nothing in it is run as Python code."""
    if len(source) > 2000:
        raise InputError('the computation is longer than 2000 characters')
    try:
        statements = ast.parse(source).body
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        raise InputError(f'cannot read the computation {source!r}: {getattr(e, "msg", e)}')
    names, last = {}, None
    for statement in statements:
        assign = (isinstance(statement, ast.Assign) and len(statement.targets) == 1
                  and isinstance(statement.targets[0], ast.Name))
        if not assign and not isinstance(statement, ast.Expr):
            raise InputError(f'{source!r}: write "name = ..." or an expression, one at a time')
        try:
            last = compute(statement.value, names)
        except (ArithmeticError, ValueError, TypeError, RecursionError) as e:
            if isinstance(e, InputError):
                raise
            why = e.args[-1] if isinstance(e, OverflowError) and e.args else e
            if 'negative power' in str(e):
                why = '1/0: a division by 0, or the slope of a^k (k < 1) at a = 0'
            raise InputError(f'cannot compute {ast.get_source_segment(source, statement)!r}: '
                             f'{why}')
        if assign:
            if isinstance(last, (int, float)):
                last = Value(last)           # a = 2: an input
            names[statement.targets[0].id] = last
    if not isinstance(last, Value):
        raise InputError(f'{source!r}: the last line must give one number (softmax(...)[0], '
                         f'not softmax(...))')
    return last, names


def compute(node, names):
    """The value of one expression of evaluate()'s small language: a number, a Value,
    or the list of Values that softmax() or rmsnorm() gives."""
    ops = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b,
           ast.Mult: lambda a, b: a * b, ast.Div: lambda a, b: a / b}
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in names:
            raise InputError(f'{node.id!r} has no value yet: give it one first, as in '
                             f'{node.id} = 2')
        return names[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in ops:
        return ops[type(node.op)](compute(node.left, names), compute(node.right, names))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        base, k = compute(node.left, names), compute(node.right, names)
        if not isinstance(k, (int, float)):
            raise InputError('a power must be a number, as in a**2')
        return base ** k
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = compute(node.operand, names)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        args = [compute(a, names) for a in node.args]
        args = [a if isinstance(a, Value) else Value(a) for a in args]
        f = node.func.id
        if f in ('exp', 'log', 'relu') and len(args) == 1:
            return getattr(args[0], f)()
        if f in ('softmax', 'rmsnorm') and args:
            return softmax(args) if f == 'softmax' else rmsnorm(args)
    if isinstance(node, ast.Subscript):
        vector = compute(node.value, names)
        index = node.slice.value if isinstance(node.slice, ast.Index) else node.slice  # (3.8)
        i = compute(index, names)
        if isinstance(vector, list) and type(i) is int and -len(vector) <= i < len(vector):
            return vector[i]
        raise InputError('[i] picks one of the results of softmax(...) or rmsnorm(...)')
    raise InputError('use numbers, names, + - * / **, exp(), log(), relu(), softmax(...)[i] '
                     'or rmsnorm(...)[i]')


def loss_and_gradients(model, doc):
    """doc_loss() of doc and its backward(): the loss, with every parameter's grad."""
    config, tokenizer, state_dict, adam = model
    for p in adam.params:
        p.grad = 0.0
    loss = doc_loss(tokenizer.encode_doc(doc), state_dict, config)
    loss.backward()
    return loss.data


def gradient_check(model, doc, per_matrix=2, eps=1e-6):
    """The gradient backward() finds for a few parameters of every matrix (those with
    the largest gradients: the ones that matter), beside the central difference of
    the loss, (loss(w + eps) - loss(w - eps)) / (2 eps), and how far apart they are."""
    config, tokenizer, state_dict, adam = model
    tokens = tokenizer.encode_doc(doc)
    loss = loss_and_gradients(model, doc)
    rows = [f'gradient check on {doc!r} (loss {loss:.6f}): backward() against a central '
            f'difference of the loss, eps {eps:g}',
            f'  {"parameter":<24} {"backward()":>15} {"difference":>15}  relative gap']
    worst = 0.0
    for name, matrix in state_dict.items():
        cells = sorted(((abs(p.grad), r, c) for r, row in enumerate(matrix)
                        for c, p in enumerate(row)), reverse=True)[:per_matrix]
        for _, r, c in cells:
            p = matrix[r][c]
            grad, kept = p.grad, p.data
            p.data = kept + eps
            up = doc_loss(tokens, state_dict, config).data
            p.data = kept - eps
            down = doc_loss(tokens, state_dict, config).data
            p.data = kept
            numeric = (up - down) / (2 * eps)
            gap = abs(grad - numeric) / max(abs(grad), abs(numeric), 1e-12)
            worst = max(worst, gap)
            rows.append(f'  {f"{name}[{r}][{c}]":<24} {grad:>15.9f} {numeric:>15.9f}  {gap:.1e}'
                        + ('' if gap < 1e-4 else '  <- DIFFERENT'))
    for p in adam.params:
        p.grad = 0.0
    rows.append(f'largest relative gap {worst:.1e}: ' + (
        'the gradients agree (a gap below 1e-4: the rounding of the difference)' if worst < 1e-4
        else 'a gradient is WRONG: a derivative in the engine or the model does not match '
             'what it computes'))
    return '\n'.join(rows)


SHADES = ' .:-=+*#%@'


def shade(x, top, decades=4):
    """A character for x in 0..top on a log scale over `decades` powers of ten: ' ' for
    0 (or below top / 10**decades), '@' for top."""
    if x <= 0 or top <= 0 or x < top / 10 ** decades:
        return ' '
    return SHADES[max(1, min(9, 1 + round(8 * (1 + math.log10(x / top) / decades))))]


def gradient_map(model, doc):
    """Where the gradient of one document's loss goes: its size in each matrix, and in
    each token's row of wte and each position's row of wpe."""
    config, tokenizer, state_dict, adam = model
    loss = loss_and_gradients(model, doc)
    norms = {name: math.sqrt(sum(p.grad ** 2 for row in matrix for p in row))
             for name, matrix in state_dict.items()}
    top = max(norms.values()) or 1.0
    out = [f'where the gradient of the loss of {doc!r} goes (loss {loss:.4f}); its size is '
           f'the root of the sum of squares',
           'per matrix:']
    out += [f'  {name:<18} {norm:9.5f} ' + '#' * round(40 * norm / top) for name, norm in norms.items()]
    rows = [math.sqrt(sum(p.grad ** 2 for p in row)) for row in state_dict['wte']]
    token_marks = ['^', '$'] + tokenizer.chars
    in_doc = set(tokenizer.encode_doc(doc))
    out += ['wte, one row per token (^ <BOS>, $ <EOS>), shaded on a log scale (@ the largest, '
            'blank: none):',
            '  ' + ''.join(token_marks), '  ' + ''.join(shade(g, max(rows)) for g in rows),
            '  ' + ''.join('*' if i in in_doc else ' ' for i in range(len(rows)))
            + f'  <- * the tokens of {doc!r} (<BOS> and <EOS> too)']
    inside = [g for i, g in enumerate(rows) if i in in_doc]
    outside = [g for i, g in enumerate(rows) if i not in in_doc]
    out.append(f'  mean row gradient: {sum(inside) / len(inside):.5f} for its tokens (inputs and '
               f'targets), {sum(outside) / max(1, len(outside)):.5f} for the others (scored as '
               f'outputs: weight tying)')
    positions = [math.sqrt(sum(p.grad ** 2 for p in row)) for row in state_dict['wpe']]
    used = min(len(doc) + 1, config.block_size)               # the positions doc_loss reads
    out += ['wpe, one row per position:',
            '  ' + ''.join(str(i % 10) for i in range(len(positions))),
            '  ' + ''.join(shade(g, max(positions)) for g in positions)
            + f'  <- {doc!r} reads positions 0-{used - 1}; '
            + ('the others get none' if not any(positions[used:]) else 'the others get some')]
    for p in adam.params:
        p.grad = 0.0
    return '\n'.join(out)


def embedding_map(model, width=60, height=18):
    """The tokens' embeddings (wte rows) on a map: each at its coordinates along the
    two directions in which the rows differ most (the principal components, found by
    power iteration), so that tokens the model treats alike stand close together."""
    tokenizer, rows = model.tokenizer, [[p.data for p in row] for row in model.state_dict['wte']]
    n = len(rows[0])
    mean = [sum(col) / len(rows) for col in zip(*rows)]
    centered = [[x - m for x, m in zip(row, mean)] for row in rows]
    cov = [[sum(r[i] * r[j] for r in centered) for j in range(n)] for i in range(n)]
    total = sum(cov[i][i] for i in range(n)) or 1.0
    directions, shares = [], []
    for _ in range(2):
        v = [1.0 + i / n for i in range(n)]                  # any start but a 0 vector
        for _ in range(200):
            w = [sum(c * x for c, x in zip(row, v)) for row in cov]
            size = math.sqrt(sum(x * x for x in w)) or 1.0
            v = [x / size for x in w]
        share = sum(v[i] * cov[i][j] * v[j] for i in range(n) for j in range(n))
        cov = [[cov[i][j] - share * v[i] * v[j] for j in range(n)] for i in range(n)]
        directions.append(v)
        shares.append(share / total)
    points = [[sum(x * d for x, d in zip(row, v)) for v in directions] for row in centered]
    x_lo, x_hi = min(p[0] for p in points), max(p[0] for p in points)
    y_lo, y_hi = min(p[1] for p in points), max(p[1] for p in points)
    grid = [[' '] * width for _ in range(height)]
    marks = ['^', '$'] + [ch if ch.isprintable() and ch != ' ' else '?' for ch in tokenizer.chars]
    for mark, (x, y) in zip(marks, points):
        r = round((y_hi - y) / ((y_hi - y_lo) or 1) * (height - 1))
        c = round((x - x_lo) / ((x_hi - x_lo) or 1) * (width - 1))
        while grid[r][c] != ' ' and c < width - 1:           # (taken: the next free cell)
            c += 1
        grid[r][c] = mark
    return '\n'.join([f'the tokens by their embeddings (^ <BOS>, $ <EOS>): across, the direction '
                      f'of {shares[0]:.0%} of their spread; down, {shares[1]:.0%}']
                     + ['  |' + ''.join(row) for row in grid] + ['  +' + '-' * width])


# --- Benchmark: the speed of a training step, for anyone to rerun ---------------------

def graph_size(root):
    """(nodes, edges) of root's graph, counting the leaves (parameters) as nodes."""
    interior = topological_order(root)
    leaves = {child for node in interior for child in node.children if not child.children}
    return len(interior) + len(leaves), sum(len(node.children) for node in interior)


def bench_report(watch, config):
    try:
        import resource                     # (Unix only)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss   # KB (bytes on macOS)
        peak = f'{peak / (2 ** 20 if sys.platform == "darwin" else 2 ** 10):.1f} MB'
    except ImportError:
        peak = 'unknown on this platform'
    impl = f'{sys.implementation.name} {".".join(map(str, sys.version_info[:3]))}'
    ms, graphs = watch.history['ms'], watch.graphs
    shape = ', '.join(f'{k} {v}' for k, v in config._asdict().items() if k != 'vocab_size')
    return '\n'.join([
        f'bench: {len(ms)} steps, {shape}, batch_size {watch.args.batch_size}, {impl}',
        f'ms per step: median {statistics.median(ms):.2f} (min {min(ms):.2f}, max {max(ms):.2f})',
        f'graph per step: {sum(n for n, _ in graphs) // len(graphs)} nodes, '
        f'{sum(e for _, e in graphs) // len(graphs)} edges (mean of steps 1, 11, 21, ...)',
        f'peak memory: {peak}'])


def restart_with_a_small_pypy_nursery():
    # PyPy sizes its young generation (nursery) from the CPU cache the machine reports,
    # and reads PYPY_GC_NURSERY only at start. Where a virtual machine reported 480 MB,
    # PyPy took a 240 MB nursery: 4 MB ran 15-20% faster in a fifth of the memory. On a
    # machine reporting 32 MB, 4 MB still ran `--bench --num_steps 500` 6% faster. Only
    # `pypy3 microgpt.py ...` restarts: never a notebook's kernel, nor a program that
    # imported this file.
    if (sys.implementation.name == 'pypy' and 'PYPY_GC_NURSERY' not in os.environ
            and own_command_line() and 'ipykernel' not in sys.modules):
        env = dict(os.environ, PYPY_GC_NURSERY='4MB')
        os.execve(sys.executable, [sys.executable] + sys.argv, env)


def entry_point():
    """`python microgpt.py`: main(), with SIGTERM acting as Ctrl-C does outside
    training (files closed, no temporary file left)."""
    restart_with_a_small_pypy_nursery()
    signal.signal(signal.SIGTERM, terminate)
    try:
        main()
    finally:                                 # done: a Ctrl-C now would only break Python's
        if 'ipykernel' not in sys.modules:   # shutdown with a traceback
            signal.signal(signal.SIGINT, signal.SIG_IGN)


if __name__ == '__main__':
    entry_point()
