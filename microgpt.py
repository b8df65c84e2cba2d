"""microgpt: a complete GPT in one dependency-free Python file. Part I, the algorithm,
is eight sections; the last, train_and_sample(), runs them all (in the folder of
names.txt: python -c "import microgpt; microgpt.train_and_sample()"). Skip Part II."""
import math
import random
from collections import namedtuple
from itertools import count               # 0, 1, 2, ...: to number Values (section 3)
from operator import mul                  # a * b as a function, for map() (section 3)

# Part I: the algorithm ================================================================
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

# 2. Tokenizer
# The model reads and writes integers (token ids): one per character, and two special
# ones: <BOS> starts a document (the model reads it), <EOS> ends it (it writes it).

class Tokenizer:
    BOS, EOS = 0, 1            # the ids of the two special tokens (decode() drops them)

    def __init__(self, text):
        self.chars = sorted(set(text))               # every character, in a fixed order
        self.tokens = ['<BOS>', '<EOS>'] + self.chars   # token id i is tokens[i]
        self.ids = {ch: i for i, ch in enumerate(self.chars, start=2)}  # 'a': 2, ...
        self.vocab_size = len(self.tokens)

    def encode(self, text): return [self.ids[ch] for ch in text]  # (new char: KeyError)
    def encode_doc(self, doc): return [self.BOS] + self.encode(doc) + [self.EOS]
    # encode_doc('ab') is [0, 2, 3, 1] for the names (a is 2, b is 3, ... z is 27)
    def decode(self, ids):             # the characters of ids, without <BOS> and <EOS>
        return ''.join(self.tokens[i] for i in ids if i not in (self.BOS, self.EOS))

# 3. Autograd
# Training needs the derivative of the loss (how wrong the predictions are, section 5)
# with respect to every parameter. So every number the loss is computed from is a Value.
# A Value remembers its children, the Values it was computed from (the graph is drawn
# with the loss on top), and its local gradients: its derivative with respect to each
# child, known when it is computed. backward() applies the chain rule from the loss
# down, newest node first: each node adds local_grad * node.grad to each child's grad (a
# child of two nodes gets both). By hand, c = a*b + a^2 at a = 2, b = -3:
#   d = a * b = -6;  e = a ** 2 = 4;  c = d + e = -2.  c.grad = 1; then, newest first:
#   c: local grads 1, 1:     d.grad = 1 * 1 = 1,  e.grad = 1 * 1 = 1
#   e: local grad 2a = 4:    a.grad += 4 * 1,  a.grad = 4
#   d: local grads b, a:     a.grad += -3 * 1, a.grad = 1 (= b + 2a);  b.grad = 2
# Each Value gets a number, 0, 1, 2, ..., in the order Values are made. Its children
# were made before it, so its number is larger than theirs: topological_order uses it.
made = count()

class Value:        # (__slots__: no dict per Value; a training step makes some 13,000)
    __slots__ = ('data', 'grad', 'children', 'local_grads', 'op', 'number')

    def __init__(self, data, children=(), local_grads=(), op=''):
        self.data = float(data)           # the number
        self.grad = 0.0                   # d(loss)/d(self), filled in by backward()
        self.children = children          # the Values this one was computed from
        self.local_grads = local_grads    # d(self)/d(child), one per child
        self.op = op                      # its name, '+', '*', ... (Part II prints it)
        self.number = next(made)          # larger than its children's numbers

    def __add__(self, other):             # d(a+b)/da = 1, d(a+b)/db = 1
        if isinstance(other, Value):
            return Value(self.data + other.data, (self, other), (1.0, 1.0), '+')
        return Value(self.data + other, (self,), (1.0,), '+')   # a number: no child

    def __mul__(self, other):             # d(a*b)/da = b, d(a*b)/db = a
        if isinstance(other, Value):
            return Value(self.data * other.data, (self, other), (other.data, self.data),
                         '*')
        return Value(self.data * other, (self,), (other,), '*')

    def __pow__(self, k):                 # k is a plain number: d(a^k)/da = k * a^(k-1)
        return Value(self.data ** k, (self,), (k * self.data ** (k - 1),), f'**{k}')

    # d(e^a)/da = e^a;  d(ln a)/da = 1/a;  d(max(0,a))/da = 1 if a > 0 else 0. softmax
    # uses exp. The model uses log and relu only inside two faster ops, cross_entropy
    # and squared_relu (below); these two stay, to check those against (the >>> lines).
    def exp(self): return Value(math.exp(self.data), (self,), (math.exp(self.data),),
                                'exp')
    def log(self): return Value(math.log(self.data), (self,), (1 / self.data,), 'log')
    def relu(self): return Value(max(0, self.data), (self,), (float(self.data > 0),),
                                 'relu')

    # The rest are built from the ops above, so their derivatives come for free.
    def __neg__(self): return self * -1.0
    def __sub__(self, other): return self + (-other)
    def __truediv__(self, other): return self * other ** -1
    __radd__, __rmul__ = __add__, __mul__   # 2 + a is a + 2 (and sum() starts at 0 + a)
    def __rsub__(self, other): return (-self) + other
    def __rtruediv__(self, other): return self ** -1 * other

    def backward(self):
        """Fill in d(self)/d(v) as v.grad, for every Value v that self came from. Grads
        add up (+=), so run it once per graph; Adam.step() sets them back to 0."""
        self.grad = 1.0                   # d(self)/d(self)
        for node in reversed(topological_order(self)):
            grad = node.grad              # complete: the nodes made from it came first
            if grad:                      # (for speed: a zero grad would add nothing)
                for child, local_grad in zip(node.children, node.local_grads):
                    child.grad += local_grad * grad   # chain rule; += sums paths

def topological_order(root):
    """The nodes of root's graph in "topological order", each after its children, so
    that backward(), going in reverse, reaches a node only after every node made from
    it. The loop finds the nodes (with a stack: recursion fails at Python's 1000 levels
    on deep models); sorting by number orders them. Leaves (parameters, inputs) are not
    listed: they get their grads from the nodes made from them, and pass none on."""
    nodes, stack = {root}, [root]
    while stack:
        for child in stack.pop().children:
            if child.children and child not in nodes:   # (leaves pass nothing on)
                nodes.add(child)
                stack.append(child)
    return sorted(nodes, key=lambda node: node.number)

def numerical_grad(f, x, eps=1e-6):
    """How to know backward() is right: d f() / d x measured without it, by nudging x:
    (f(x + eps) - f(x - eps)) / (2 eps). Examples: python -m doctest microgpt.py
    >>> a, b = Value(2), Value(-3); f = lambda: a * b + a ** 2
    >>> f().backward(); a.grad, round(numerical_grad(f, a), 6)
    (1.0, 1.0)"""
    kept, f_at = x.data, []
    for nudged in (kept + eps, kept - eps):
        x.data = nudged
        f_at.append(f().data)
    x.data = kept                       # x as it was
    return (f_at[0] - f_at[1]) / (2 * eps)

def dot(a, b):
    """a . b = sum_i a_i * b_i as ONE node whose local gradients are worked out by hand
    (a "fused" op, like linear, squared_relu and cross_entropy below; a >>> example
    checks each). Built from * and + it would be 2n nodes; most of the model's work is
    dot products, so one node each makes training over 10 times faster.
    Children: a_1..a_n, then b_1..b_n. Local grads: d/da_i = b_i, then d/db_i = a_i, so
    b's data, then a's. (In dot(x, x) each x_i is a child twice, and backward() adds
    both: 2 x_i, the slope of x . x.)
    >>> a, b = [Value(1.0), Value(2.0)], [Value(3.0), Value(4.0)]
    >>> dot(a, b).backward(); [ai.grad for ai in a], [bi.grad for bi in b]
    ([3.0, 4.0], [1.0, 2.0])
    >>> round(numerical_grad(lambda: a[0] * b[0] + a[1] * b[1], a[0]), 6)
    3.0"""
    a_data, b_data = [ai.data for ai in a], [bi.data for bi in b]
    return Value(sum(map(mul, a_data, b_data)),        # map(mul, ...): a_i * b_i
                 a + b, b_data + a_data, 'dot')        # (+ of lists: joined)

def linear(x, w):
    """The matrix w times the vector x. It builds the same nodes as
        [dot(row, x) for row in w]
    (children: the row, then x; local grads: x's data, then the row's), but reads x's
    data once, not once per row: training is about 6% faster.
    >>> w, x = [[Value(1), Value(2)], [Value(3), Value(4)]], [Value(5), Value(6)]
    >>> [(y.data, y.local_grads) for y in linear(x, w)]
    [(17.0, [5.0, 6.0, 1.0, 2.0]), (39.0, [5.0, 6.0, 3.0, 4.0])]"""
    x_data = [xj.data for xj in x]
    w_data = [[wj.data for wj in row] for row in w]
    return [Value(sum(map(mul, row_data, x_data)), row + x, x_data + row_data, 'dot')
            for row, row_data in zip(w, w_data)]

# 4. Parameters
# All the model's knowledge lives in matrices of Values, its parameters, learned by
# training: a matrix is a list of rows. An embedding is a learned vector that stands
# for a token (wte: token embeddings, a row per token) or a position (wpe); in other
# matrices, row i holds the weights of a layer's output i. The shape: vocab_size
# tokens, n_embd numbers per token, n_layer layers of n_head heads, block_size places.
GPTConfig = namedtuple('GPTConfig', 'vocab_size n_embd n_head n_layer block_size')

def matrix_shapes(config):
    """{name: (rows, columns)}: wte, wpe, and per layer attention's query, key, value
    and output matrices and the MLP's two (a "multilayer perceptron", section 5). No
    output matrix: wte scores the next token too (weight tying, as in GPT-2)."""
    n = config.n_embd
    shapes = {'wte': (config.vocab_size, n), 'wpe': (config.block_size, n)}
    for i in range(config.n_layer):
        shapes.update({f'layer{i}.attn_wq': (n, n), f'layer{i}.attn_wk': (n, n),
                       f'layer{i}.attn_wv': (n, n), f'layer{i}.attn_wo': (n, n),
                       f'layer{i}.mlp_fc1': (4 * n, n),     # (4x wider: section 5)
                       f'layer{i}.mlp_fc2': (n, 4 * n)})
    return shapes

def init_state_dict(config, seed=42, std=0.15):
    """{name: matrix} (a "state_dict"): random numbers of mean 0 and spread std, all
    different so that no two outputs learn the same thing, small so that first guesses
    are near uniform: a logit sums 16 products of x's numbers (each about 1 after
    rmsnorm) and a wte row's (spread 0.15), so its spread is sqrt(16) * 0.15 = 0.6."""
    if config.n_embd % config.n_head: raise ValueError('n_head must divide n_embd')
    rng = random.Random(seed)
    return {name: [[Value(rng.gauss(0, std)) for _ in range(cols)] for _ in range(rows)]
            for name, (rows, cols) in matrix_shapes(config).items()}

def parameters(state_dict):
    """Every Value of every matrix, always in this order: Adam's m[i], v[i] go by it."""
    return [p for matrix in state_dict.values() for row in matrix for p in row]

# 5. Model
# A GPT ("generative pre-trained transformer") reads tokens and predicts the next one,
# here one token at a time: GPT-2, simplified (rmsnorm, squared_relu: see below; no bias
# vectors). One token's path (28 tokens: a-z, <BOS>, <EOS>; n_embd 16):
#   token id -> wte row (16) --+
#                              +--> x (16), the residual stream
#   position -> wpe row (16) --+
#   each layer:  x --> rmsnorm -> attention (keys, values of the earlier tokens) --> + x
#                x --> rmsnorm -> mlp_fc1 (64) -> relu^2 -> mlp_fc2 (16) ----------> + x
#   x --> rmsnorm -> a dot product with each wte row (weight tying) -> logits (28)
# x, the "residual stream", starts as the token's embedding plus its position's
# (attention sums over tokens, and a sum ignores order). Each layer ADDS to x what
# attention (reading the earlier tokens) and the MLP (working on this one) make of it.
# So the token and its position ride along past every layer, and gradients flow straight
# down through the adds (local grad 1), where through the layers alone they could fade.
# (One layer barely needs the adds; deep stacks do.)
# The logits are raw scores, one per token, that softmax makes probabilities of. The
# loss is -log of the probability given to the true next token: 0 if sure and right,
# ln(vocab_size) = ln 28 = 3.33 for a uniform guess. Untrained, it is about 3.5: random
# weights make it randomly surer of some tokens, which costs more than a uniform guess.

def softmax(logits):
    """p_i = exp(z_i) / sum_j exp(z_j): scores to probabilities (positive, sum 1).
    Subtracting the largest z, z_max, keeps every exp() <= 1 (no overflow) and changes
    no p_i (top and bottom are divided by exp(z_max)), so z_max needs no gradient."""
    z_max = max(z.data for z in logits)
    exps = [(z - z_max).exp() for z in logits]
    total_inv = sum(exps) ** -1        # one node (e / sum would make a ** -1 per e)
    return [e * total_inv for e in exps]

def rmsnorm(x):
    """x / sqrt(mean(x^2) + 1e-5) (1e-5: never 1/0): x rescaled to a root-mean-square of
    1, so that each layer gets inputs of one size however x grew. A gradient reaches x_i
    two ways, through its own x_i * scale and through scale (shared by all outputs)."""
    scale = (dot(x, x) / len(x) + 1e-5) ** -0.5    # dot(x, x): the sum of squares
    return [xi * scale for xi in x]

def attention(x, keys, values, sd, i, config):
    """Layer i's attention at the newest position, from its normalized vector x. From x:
    a query q (what this token looks for), a key k (what it offers), a value v (what it
    passes on); k and v join the cache. Each head, on its own slice of them, scores each
    position s so far (this one too) by q . k_s / sqrt(head_dim), turns the scores into
    weights by softmax, and sums the values v_s so weighted. wo mixes what the heads
    found (one may seek a vowel, one the letter before)."""
    head_dim = config.n_embd // config.n_head
    q = linear(x, sd[f'layer{i}.attn_wq'])           # n_embd numbers, as are k and v
    keys.append(linear(x, sd[f'layer{i}.attn_wk']))
    values.append(linear(x, sd[f'layer{i}.attn_wv']))
    out = []
    for head in range(config.n_head):
        start, end = head * head_dim, (head + 1) * head_dim   # this head's slice
        q_h = q[start:end]                          # head_dim numbers
        k_h = [k[start:end] for k in keys]          # one key per position so far
        v_h = [v[start:end] for v in values]        # one value per position so far
        # q_h . k_s sums head_dim products, so its spread grows like sqrt(head_dim).
        # Divided by it, scores stay near 1. Large scores would make softmax give one
        # position all the weight, and then pass almost no gradient back.
        weights = softmax([dot(q_h, k_s) / math.sqrt(head_dim) for k_s in k_h])
        # output j: sum_s weights_s * v_s[j], the weights dotted with each value's j-th
        out += [dot(weights, [v_s[j] for v_s in v_h]) for j in range(head_dim)]
    return linear(out, sd[f'layer{i}.attn_wo'])

def squared_relu(x):
    """relu(x)^2, the MLP's nonlinearity, as in the Primer paper (So et al., 2021),
    which found that it trains transformers faster than plain relu. One fused node
    (x.relu() ** 2 would be two); by the chain rule, d/dx relu(x)^2 = 2 relu(x)
    relu'(x) = 2 relu(x) for every x (x < 0: relu(x) = relu'(x) = 0).
    >>> x = Value(1.5); squared_relu(x).backward(); x.grad
    3.0
    >>> round(numerical_grad(lambda: x.relu() ** 2, x), 6)
    3.0
    >>> x = Value(-1.5); squared_relu(x).backward(); x.grad   # below 0: flat
    0.0"""
    r = max(0.0, x.data)
    return Value(r * r, (x,), (2.0 * r,), 'relu^2')

def gpt(token_id, pos_id, cache, sd, config):
    """The logits for the token after token_id, at position pos_id, with the weights sd
    (the state_dict). cache[i] holds layer i's keys and values so far; this call adds
    its own, and a later position's loss sends gradients back through them too. Read
    one at a time, no position sees a later one: no "causal mask" is needed."""
    x = [t + p for t, p in zip(sd['wte'][token_id], sd['wpe'][pos_id])]   # (n_embd,)
    for i in range(config.n_layer):
        keys, values = cache[i]
        attn = attention(rmsnorm(x), keys, values, sd, i, config)
        x = [xj + aj for xj, aj in zip(x, attn)]
        # MLP: 4x wider, squared ReLU, back (nonlinear, or the 2 matrices act as 1)
        hidden = linear(rmsnorm(x), sd[f'layer{i}.mlp_fc1'])
        mlp = linear([squared_relu(hj) for hj in hidden], sd[f'layer{i}.mlp_fc2'])
        x = [xj + mj for xj, mj in zip(x, mlp)]
    # A last rmsnorm (x grew at each add), then weight tying: logit t is x . wte row t
    return linear(rmsnorm(x), sd['wte'])

def cross_entropy(logits, target):
    """The loss -log softmax(z)[target] = log(sum_j exp(z_j)) - z_target: the value of
    -softmax(logits)[target].log(), fused. d/dz_j of log(sum_k exp(z_k)) is
    exp(z_j) / sum_k exp(z_k), that is softmax(z)_j; d/dz_j of z_target is 1 for j =
    target, else 0. So d/dz_j = softmax(z)_j, minus 1 for the target token. By hand:
    z = (0, ln 3), target 1: softmax (1/4, 3/4), loss ln 4/3, local grads 1/4, -1/4.
    >>> z = [Value(0.0), Value(math.log(3))]; cross_entropy(z, 1).backward()
    >>> [round(zi.grad, 6) for zi in z]
    [0.25, -0.25]
    >>> [round(numerical_grad(lambda: -softmax(z)[1].log(), zi), 6) for zi in z]
    [0.25, -0.25]"""
    z_max = max(z.data for z in logits)        # as in softmax: no overflow
    exps = [math.exp(z.data - z_max) for z in logits]
    total = sum(exps)                          # = sum_j exp(z_j) / exp(z_max)
    local_grads = [e / total for e in exps]    # softmax(z)
    local_grads[target] -= 1.0
    return Value(z_max + math.log(total) - logits[target].data, logits, local_grads,
                 'xent')   # z_max + log(total) = log(exp(z_max) * total) = log(sum)

def doc_loss(tokens, state_dict, config):
    """The mean loss of predicting each token of a document from the ones before it.
    tokens starts with <BOS>; block_size positions at most are read (names: all)."""
    cache = [([], []) for _ in range(config.n_layer)]   # per layer: (keys, values)
    losses = []
    for pos in range(min(len(tokens) - 1, config.block_size)):   # in order: cache grows
        logits = gpt(tokens[pos], pos, cache, state_dict, config)   # for the next token
        losses.append(cross_entropy(logits, tokens[pos + 1]))
    return sum(losses) / len(losses)

# 6. Training
# A parameter's gradient says how the loss changes as it grows, so a small move against
# it, p -= lr * p.grad (lr: the learning rate), lowers the loss: gradient descent.

class Adam:
    """Adam (Kingma & Ba, 2015). Plain gradient descent steps as far as the gradient is
    large, and gradients differ by orders of magnitude. Adam divides a running mean of
    each gradient (m) by the root of a running mean of its square (v): about +-1 for a
    steady gradient, so each weight moves about lr a step, less if its gradient is
    noisy. weight_decay, if not 0, shrinks every weight a little each step (AdamW)."""
    # m averages about the last 1 / (1 - b1) = 7 gradients, v 100: this is a short run
    b1, b2, eps = 0.85, 0.99, 1e-8           # (PyTorch's: 0.9, 0.999; eps: never 1/0)

    def __init__(self, params, weight_decay=0.0):
        self.params, self.weight_decay, self.t = params, weight_decay, 0   # t: steps
        self.m, self.v = [0.0] * len(params), [0.0] * len(params)   # the running means

    def step(self, lr):
        """Move every parameter, then set its grad back to 0 (backward() adds to it)."""
        self.t += 1
        b1, b2, wd, eps = self.b1, self.b2, self.weight_decay, self.eps   # (speed)
        # m and v start at 0, so after t steps of a steady gradient g, m = (1 - b1^t) g:
        # dividing by 1 - b1^t (and v by 1 - b2^t) undoes that pull towards 0.
        fix1, fix2 = 1.0 - b1 ** self.t, 1.0 - b2 ** self.t
        for i, p in enumerate(self.params):
            self.m[i] = b1 * self.m[i] + (1 - b1) * p.grad
            self.v[i] = b2 * self.v[i] + (1 - b2) * p.grad ** 2
            m_hat, v_hat = self.m[i] / fix1, self.v[i] / fix2
            p.data -= lr * (m_hat / (math.sqrt(v_hat) + eps) + wd * p.data)
            p.grad = 0.0

def lr_at(step, num_steps, learning_rate, warmup_steps):
    """The learning rate of step (from 0): a linear warmup, then a linear decay. At step
    1, m_hat / sqrt(v_hat) is +-1 for every weight, a full lr on one batch's evidence:
    warmup keeps the first steps small, until m and v mean more."""
    if step < warmup_steps: return learning_rate * ((step + 1) / warmup_steps)
    return learning_rate * ((num_steps - step) / (num_steps - warmup_steps))

Model = namedtuple('Model', 'config tokenizer state_dict')   # a GPT, ready to train

def train(model, adam, docs, num_steps, learning_rate, warmup_steps, batch_size):
    """num_steps steps, each on the next batch_size documents, round and round. It
    yields each step's loss (a generator) for its caller to use between steps:
    train_and_sample() prints every 50th; Part II also validates, saves, plots."""
    for step in range(num_steps):
        batch = [docs[(step * batch_size + b) % len(docs)] for b in range(batch_size)]
        loss = sum(doc_loss(model.tokenizer.encode_doc(doc), model.state_dict,
                            model.config) for doc in batch) / batch_size   # the mean
        loss.backward()                 # ONE backward(): every parameter's gradient
        adam.step(lr_at(step, num_steps, learning_rate, warmup_steps))
        # Only the number: paused at yield, a Value here keeps the whole graph alive
        loss = loss.data
        yield loss

# 7. Sampling
# To write a new document: feed <BOS>, draw the next token from the model's
# probabilities, feed it back in, and so on until <EOS>. The temperature T divides the
# logits first: below 1 the model keeps to its favourite tokens, above 1 it dares.

def sample(state_dict, tokenizer, config, rng, temperature=1.0, prompt=''):
    """One new document that starts with prompt: it ends at <EOS> or at block_size."""
    tokens = [Tokenizer.BOS] + tokenizer.encode(prompt)
    cache = [([], []) for _ in range(config.n_layer)]
    for pos in range(config.block_size):
        logits = [z.data for z in gpt(tokens[pos], pos, cache, state_dict, config)]
        if pos + 1 < len(tokens): continue   # in the prompt: only fill the cache
        logits[Tokenizer.BOS] = -math.inf    # never a target in training: never draw
        # softmax(z / T), on plain floats: nothing learns here; choices() normalises
        z_max = max(logits)                  # (as in softmax: no exp() overflows)
        weights = [math.exp((z - z_max) / temperature) for z in logits]
        token_id = rng.choices(range(len(weights)), weights)[0]   # (a list of one)
        if token_id == Tokenizer.EOS: break
        tokens.append(token_id)
    return tokenizer.decode(tokens)

# 8. The whole story: everything above, in the order it happens

def train_and_sample(input='names.txt', val_fraction=0.1, seed=42, n_embd=16,
                     n_head=4, n_layer=1, block_size=16, num_steps=750, batch_size=4,
                     learning_rate=0.01, warmup_steps=50, weight_decay=0.0,
                     eval_docs=300, num_samples=20, temperature=0.5, prompt=''):
    """Read the documents, build a GPT, train it, measure its loss on eval_docs
    documents it never saw, print num_samples new ones (starting with prompt).
    block_size: the most tokens read at once; batch_size: documents per step."""
    with open(input, encoding='utf-8-sig') as f:  # -sig: skip a byte-order mark
        docs = load_docs(f.read())
    train_docs, val_docs = split_docs(docs, val_fraction, random.Random(seed))
    tokenizer = Tokenizer(''.join(docs))  # every character, of held-out documents too
    config = GPTConfig(tokenizer.vocab_size, n_embd, n_head, n_layer, block_size)
    sd = init_state_dict(config, seed)
    model, adam = Model(config, tokenizer, sd), Adam(parameters(sd), weight_decay)
    print(f'{len(train_docs)} training documents, {len(adam.params)} parameters')
    for step, loss in enumerate(train(model, adam, train_docs, num_steps, learning_rate,
                                      warmup_steps, batch_size), start=1):
        if step == 1 or step % 50 == 0 or step == num_steps:
            print(f'step {step:4d} / {num_steps} | loss {loss:.4f}')
    losses = [doc_loss(tokenizer.encode_doc(doc), sd, config).data
              for doc in val_docs[:eval_docs]]        # documents it never trained on
    if losses: print(f'validation loss {sum(losses) / len(losses):.4f}')
    rng = random.Random(seed)             # the same model and seed write the same names
    for _ in range(num_samples):
        print(sample(sd, tokenizer, config, rng, temperature, prompt))
    return model

# Part II: the workbench ===============================================================
# What `python microgpt.py` adds around Part I's own train() and sample() (edit them: the
# command line shows it): progress, validation, checkpoints, Ctrl-C, views, a benchmark.
# It protects (README: what it does not): the user's files (it replaces only a checkpoint
# asked for); one line, exit status 2, for bad input, before any work; what was trained,
# on Ctrl-C; the caller's process (a notebook), left as found.
# ======================================================================================
import signal
import sys
_SCRIPT = __name__ == '__main__' and 'IPython' not in sys.modules   # python microgpt.py
if _SCRIPT:                                  # (a Ctrl-C while it starts: quietly, 130)
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))
import argparse, ast, gc, hashlib, inspect, json, os, shutil  # noqa: E401, E402 (after that)
import stat, statistics, time, unicodedata                     # noqa: E401, E402

__all__ = ['load_docs', 'split_docs', 'Tokenizer', 'Value', 'topological_order', 'dot',
           'numerical_grad', 'linear', 'GPTConfig', 'matrix_shapes', 'init_state_dict',
           'parameters', 'softmax', 'rmsnorm', 'attention', 'squared_relu', 'gpt', 'cross_entropy',
           'doc_loss', 'Adam', 'lr_at', 'Model', 'train', 'sample', 'train_and_sample', 'main',
           'save_checkpoint', 'load_checkpoint', 'backward_table', 'gradient_check',
           'gradient_map', 'embedding_map', 'attention_maps', 'attention_by_hand',
           'next_token_table']

class _BadInput(ValueError):
    """A flag, a file or a checkpoint that cannot be used: one line, exit status 2."""

# --- Settings: every flag, its default and its limit, in one table --------------------
_STORY = {name: p.default for name, p in inspect.signature(train_and_sample).parameters.items()}
_SHAPE = ('n_embd', 'n_head', 'n_layer', 'block_size')
_FLAGS = {  # group: [(flag, default (_STORY: train_and_sample's), type or its most, help)]
    'the data': [
        ('input', None, str, 'UTF-8 text, a document a line (default: names.txt beside this)'),
        ('val_fraction', _STORY, float, 'share of the documents held out for validation'),
        ('seed', _STORY, 2 ** 64, 'the same seed: the same split, weights, losses, samples')],
    "the model's shape (with --load: the checkpoint's)": [
        ('n_embd', _STORY, 10 ** 5, 'width of the residual stream'),
        ('n_head', _STORY, 10 ** 5, 'attention heads per layer (they divide n_embd)'),
        ('n_layer', _STORY, 10 ** 4, 'transformer layers'),
        ('block_size', _STORY, 10 ** 6, 'longest context, in tokens')],
    'training': [
        ('num_steps', _STORY, 10 ** 9, 'training steps (with --bench: 100)'),
        ('batch_size', _STORY, 10 ** 6, 'documents per step'),
        ('learning_rate', _STORY, float, 'peak Adam learning rate'),
        ('warmup_steps', _STORY, 10 ** 9, 'steps of linear warmup, then a linear decay to 0'),
        ('weight_decay', _STORY, float, 'decoupled weight decay, as AdamW'),
        ('eval_docs', _STORY, 10 ** 9, 'held-out documents per validation (0: none)'),
        ('eval_every', 250, 10 ** 9, 'steps between validations')],
    'sampling': [
        ('num_samples', _STORY, 10 ** 6, 'documents to sample after training'),
        ('temperature', _STORY, float, 'above 0: lower is safer, higher is wilder'),
        ('prompt', _STORY, str, 'every sample starts with this text')],
    'checkpoints': [
        ('save', None, str, 'write a checkpoint (JSON) here during and after training'),
        ('save_every', 100, 10 ** 9, 'steps between checkpoints (0: only at the end)'),
        ('load', None, str, 'go on from a checkpoint: its weights, Adam, split, place'),
        ('bench', False, bool, 'time the training steps; no validation, no samples')],
    'views (after training; of a checkpoint alone: --load PATH --num_steps 0)': [
        ('show_backward', None, '?', 'backward() node by node on TEXT, or 3 examples; then stop'),
        ('gradcheck', None, '?', 'backward() against finite differences, on a document'),
        ('show_gradients', None, '?', "where a document's gradient goes"),
        ('show_embeddings', False, bool, 'the tokens on a map of their embeddings'),
        ('show_attention', None, str, "each head's attention over TEXT, and what it does"),
        ('show_next', None, str, "the model's probabilities for the token after TEXT"),
        ('attention_by_hand', None, '?', "layer 0's first head over TEXT, number by number")]}
DEFAULTS = {n: _STORY[n] if d is _STORY else d for rows in _FLAGS.values() for n, d, _, _ in rows}
_MOST = {n: most for rows in _FLAGS.values() for n, _, most, _ in rows if type(most) is int}
MAX_INPUT_BYTES, MAX_CHECKPOINT_BYTES = 16 * 2 ** 20, 64 * 2 ** 20

class _Parser(argparse.ArgumentParser):
    def error(self, message):                # one line, no usage block
        raise _BadInput(message)

def _settings(argv):
    """({flag: argv's value, else its default}, checked once here, and the flags given)."""
    parser = _Parser(description='Train a tiny GPT on documents, one a line, then write new ones; '
                                 'or look inside (a view of a document: the first held out).')
    for title, rows in _FLAGS.items():
        group = parser.add_argument_group(title)
        for name, _, kind, text in rows:
            d = DEFAULTS[name]
            text += '' if d in (None, '', False) else f' (default {d:g})'
            options = (dict(action='store_true') if kind is bool else
                       dict(nargs='?', const='', metavar='TEXT') if kind == '?' else
                       dict(type=kind if kind in (str, float) else int, metavar='PATH' if name
                            in ('input', 'save', 'load') else 'TEXT' if kind is str else None))
            group.add_argument(f'--{name}', help=text, default=argparse.SUPPRESS, **options)
    given = vars(parser.parse_args(argv))
    for name, value in given.items():        # texts as typed: in a C locale, non-ASCII
        if isinstance(value, str) and name not in ('input', 'save', 'load'):   # arrives as
            try:                             # surrogates; accents in one form (NFC)
                given[name] = unicodedata.normalize('NFC', os.fsencode(value).decode('utf-8'))
            except (UnicodeError, ValueError):
                raise _BadInput(f'--{name}: not valid UTF-8 text')
    s = {**DEFAULTS, 'num_steps': 100 if given.get('bench') else DEFAULTS['num_steps'], **given}
    for name, most in _MOST.items():
        low = 1 if name in _SHAPE + ('batch_size', 'eval_every') else 0
        if not low <= s[name] <= most:
            raise _BadInput(f'--{name} must be from {low} to {most}, not {s[name]}')
    for name, least in (('learning_rate', 0), ('temperature', 1e-100)):   # (1 / T: finite)
        if not least < s[name] < math.inf:
            raise _BadInput(f'--{name} must be a positive number (above {least:g}), not {s[name]}')
    if not 0 <= s['weight_decay'] < 1 / s['learning_rate']:   # (AdamW: w -= lr * wd * w)
        raise _BadInput(f"--weight_decay must be from 0 to below 1 / --learning_rate "
                        f"({1 / s['learning_rate']:g}), not {s['weight_decay']}")
    if not 0 <= s['val_fraction'] < 1:
        raise _BadInput(f"--val_fraction must be at least 0 and below 1, not {s['val_fraction']}")
    for name in ('input', 'save', 'load'):
        if s[name] == '' or '\0' in (s[name] or ''):
            raise _BadInput(f'--{name} needs a file name (not empty, without a NUL character)')
    if 'save_every' in given and not s['save']:
        raise _BadInput('--save_every needs --save PATH: there is nothing to save to')
    if s['bench'] and (s['num_steps'] == 0 or s['save']):
        raise _BadInput('--bench times 1 or more training steps, and saves nothing: leave '
                        'out --num_steps 0 and --save')
    return s, given

# --- The input: read, and checked against all that will use it, before any work -------

def _read_file(path, what, most):
    """The bytes of a regular file (a pipe or a device could block, or never end)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NONBLOCK', 0))
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise _BadInput(f'{what} {path!r} is not a regular file; save it to one first')
        with os.fdopen(fd, 'rb') as f:
            data = f.read(most + 1)
    except FileNotFoundError:
        raise _BadInput(f'{what} {path!r} not found')
    except OSError as e:
        raise _BadInput(f'cannot read {what} {path!r}: {e.strerror or e}')
    if len(data) > most:
        raise _BadInput(f'{what} {path!r} has more than {most // 2 ** 20} MB; microgpt reads '
                        f'at most {most // 2 ** 20} MB')
    return data

def _read_docs(path):
    """The input's documents, without byte-order marks (two files joined have two)."""
    data = _read_file(path, 'input file', MAX_INPUT_BYTES)
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as e:          # (the line of the bad byte, whatever the breaks)
        raise _BadInput(f'input file {path!r} is not UTF-8 text: byte 0x{data[e.start]:02x} '
                        f'at offset {e.start} (line {len((data[:e.start] + b".").splitlines())})')
    docs = load_docs(unicodedata.normalize('NFC', text.replace('\ufeff', '')))
    if not docs:
        raise _BadInput(f'input file {path!r} is empty: it needs one document per line')
    return docs

_Plan = namedtuple('_Plan', 'path model adam train_docs val_docs split start texts')

def _prepare(s, given):
    """The run's input, checked against all that will use it before any work (documents,
    checkpoint, texts, memory, save path): a _Plan of the path, the model (loaded or new),
    the documents, their split, the first document to train on, the texts to start from."""
    here = os.path.dirname(os.path.abspath(__file__)) if '__file__' in globals() else '.'
    path = s['input'] or os.path.join(here, 'names.txt')   # (pasted in a notebook: no file)
    docs = _read_docs(path)
    model, adam, kept = _load(s['load'], s['weight_decay']) if s['load'] else (None, None, {})
    digest = hashlib.sha256('\n'.join(docs).encode()).hexdigest()[:16]   # (the documents)
    split = kept.get('split', {'seed': s['seed'], 'val_fraction': s['val_fraction']})
    if 'val_fraction' in given and s['val_fraction'] != split['val_fraction']:
        raise _BadInput(f"--val_fraction {s['val_fraction']:g} differs from the checkpoint's "
                        f"{split['val_fraction']:g} (its split); leave it out when you --load")
    for name in _SHAPE:
        if model and name in given and given[name] != getattr(model.config, name):
            raise _BadInput(f"--{name} {given[name]} differs from the checkpoint's {name} "
                            f'{getattr(model.config, name)}; leave it out when you --load')
    if not model and s['n_embd'] % s['n_head']:
        raise _BadInput(f"--n_embd {s['n_embd']} is not divisible by --n_head {s['n_head']}")
    tokenizer = model.tokenizer if model else Tokenizer(''.join(docs))
    config = model.config if model else GPTConfig(tokenizer.vocab_size, *map(s.get, _SHAPE))
    unknown = sorted(set(''.join(docs)) - set(tokenizer.chars))
    if unknown:
        raise _BadInput(f"{path!r} has character {unknown[0]!r}, not in the checkpoint's "
                        f'vocabulary: give the --input it was trained on')
    if split.get('docs', digest) != digest and (s['num_steps'] or s['save']):
        raise _BadInput(f"{path!r} is not the input {s['load']!r} trained on: going on would "
                        f'hold out documents it trained on (give that input, or --num_steps 0)')
    if 'seed' in given and 'split' in kept and s['seed'] != split['seed']:
        _complain(f"note: the split is the checkpoint's (seed {split['seed']}); --seed "
                  f"{s['seed']} sets the samples")
    split = {**split, 'docs': digest}
    train_docs, val_docs = split_docs(docs, split['val_fraction'], random.Random(split['seed']))
    if not train_docs and s['num_steps']:
        raise _BadInput(f"{path!r} has {len(docs)} documents, all held out by --val_fraction "
                        f"{split['val_fraction']:g}: none is left to train on")
    texts = {}                               # every text a sample or a view starts from
    for name, taken in (('prompt', 0), ('show_next', 1), ('show_attention', 1),
                        ('attention_by_hand', 1), ('gradcheck', 0), ('show_gradients', 0)):
        text, most = s[name], config.block_size - taken   # (<BOS> takes a place)
        if text == '' and name != 'prompt':  # a view's default: the first held-out document
            if not val_docs:
                raise _BadInput(f'--{name} needs a document; none of the {len(docs)} is held '
                                f"out (--val_fraction {split['val_fraction']:g}): give one, as "
                                f'--{name} {docs[0][:most]}')
            text = val_docs[0][:min(2, most) if name == 'attention_by_hand' else most]
        for ch in text or '':
            if ch not in tokenizer.ids:
                raise _BadInput(f'--{name} {text!r}: character {ch!r} is not in the vocabulary')
        if len(text or '') > most:
            raise _BadInput(f'--{name} has {len(text)} characters; at most {most} fit in '
                            f'block_size {config.block_size}')
        texts[name] = text
    need, have = _memory_needed(config, s['batch_size'], docs), _memory_available()
    if have is not None and need > have:
        raise _BadInput(f'training this model needs about {_in_units(need)} of memory ({config}, '
                        f"batch_size {s['batch_size']}); this process can use {_in_units(have)}")
    if s['save']:
        _check_save_path(s['save'], config)
    if not model:                            # a new model, as train_and_sample() builds it
        sd = init_state_dict(config, s['seed'])
        model, adam, kept = Model(config, tokenizer, sd), Adam(parameters(sd),
                                                               s['weight_decay']), {}
    for name in ('show_attention', 'attention_by_hand'):
        if texts[name] is not None:          # (they find attention's numbers in the graph)
            try:
                attention_by_hand(model, texts[name])
                _attention_weights(model, texts[name])
            except (LookupError, ValueError):
                raise _BadInput(f"--{name}: attention's numbers are not where the view looks "
                                f"for them in gpt()'s graph: was attention() edited?")
    if 0 < s['num_steps'] <= s['warmup_steps']:
        top = s['learning_rate'] * s['num_steps'] / s['warmup_steps']
        _complain(f"warning: --warmup_steps {s['warmup_steps']} is not below --num_steps "
                  f"{s['num_steps']}: the learning rate climbs all run, to {top:g} at most, "
                  f'and never decays')
    return _Plan(path, model, adam, train_docs, val_docs, split,   # (an older one: by t)
                 kept.get('docs_seen', adam.t * s['batch_size']), texts)

# Memory: the parameters (and Adam's m, v) and a step's graph. A position reads each weight
# in a dot product (2 edges) but wpe's other rows; norms, adds, softmax, relu^2 add ~11 nodes,
# 20 edges per n_embd and layer; attention, a pair of positions: 6 nodes, 7 edges a head (the
# score, its scale, softmax) and 4 n_embd edges (q . k and the weights . v).
_BYTES = dict(node=240, edge=25, parameter=250)

def _memory_needed(config, batch_size, docs):
    positions, shapes = min(max(map(len, docs)) + 1, config.block_size), matrix_shapes(config)
    n, layers, pairs = config.n_embd, config.n_layer, positions * (positions + 1) // 2
    params = sum(r * c for r, c in shapes.values())
    nodes = positions * (sum(r for r, _ in shapes.values()) - config.block_size + 1
                         + 11 * n * layers) + 6 * config.n_head * layers * pairs
    edges = positions * (2 * (params - (config.block_size - 1) * n) + 20 * n * layers) \
        + (4 * n + 7 * config.n_head) * layers * pairs
    return (_BYTES['parameter'] * params + 3 * sum(100 + len(doc) for doc in docs)
            + batch_size * (_BYTES['node'] * nodes + _BYTES['edge'] * edges))

def _memory_available():
    """Bytes this process can still use, or None: the machine's available memory (Linux),
    or its container's limit less what it uses, whichever is less."""
    def read(path):
        with open(path) as f:
            return f.read(4096)
    found = []
    for left in (lambda: 1024 * int(read('/proc/meminfo').split('MemAvailable:')[1].split()[0]),
                 lambda: int(read('/sys/fs/cgroup/memory.max'))      # ('max': no limit)
                 - int(read('/sys/fs/cgroup/memory.current'))):
        try:
            found.append(left())
        except (OSError, ValueError, IndexError):
            pass                             # (not Linux, no container, no limit)
    return max(0, min(found)) if found else None

def _in_units(size):
    for unit, scale in (('GB', 2 ** 30), ('MB', 2 ** 20), ('kB', 2 ** 10)):
        if size >= scale:
            return f'{size / scale:,.{1 if size < 10 * scale else 0}f} {unit}'
    return f'{size} bytes'

# --- Checkpoints: a JSON file (readable, and safe to load, unlike pickle) --------------
_FORMAT = 'microgpt checkpoint 1'

def _check_save_path(path, config=None):
    """Refuse a path holding anything but a checkpoint or an empty file; with config
    (before training), a path the save would fail on, or a disk without room."""
    target = os.path.realpath(path)          # (through a symlink: the file it names)
    if path.endswith(('/', os.sep)) or os.path.isdir(target):
        raise _BadInput(f'--save {path!r} is a folder; give the file name to save to')
    if os.path.lexists(target):
        head = _read_file(target, '--save', MAX_CHECKPOINT_BYTES)[:64]   # (only a file)
        if head and not head.startswith(json.dumps({'format': _FORMAT})[:-1].encode()):
            raise _BadInput(f'--save {path!r} exists and is not a microgpt checkpoint; '
                            f'refusing to replace it: remove it first, or save elsewhere')
        if not os.access(target, os.W_OK):
            raise _BadInput(f'--save {path!r} is read-only; refusing to replace it')
    if config is None:
        return
    size = 75 * sum(r * c for r, c in matrix_shapes(config).values()) + 10 * config.vocab_size
    if size > MAX_CHECKPOINT_BYTES:          # (3 numbers a parameter, 25 characters each)
        raise _BadInput(f'a checkpoint of this model would have about {_in_units(size)}; '
                        f'microgpt loads at most {MAX_CHECKPOINT_BYTES // 2 ** 20} MB')
    try:                                     # the sure test: make a file where it will
        os.remove(_write_beside(target, ''))
        free = shutil.disk_usage(os.path.dirname(target)).free
    except OSError as e:
        raise _BadInput(f'cannot write checkpoint {path!r}: {e.strerror or e}')
    if free < size:                          # (the new file is written beside the old)
        raise _BadInput(f'a checkpoint of this model needs about {_in_units(size)}; the '
                        f'disk of {path!r} has {_in_units(free)} free')

def _write_beside(target, text):
    """A new file beside target (never one that exists), holding text, on the disk."""
    name = f'{target}.{os.getpid()}-{os.urandom(3).hex()}.tmp'
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)   # (less the umask)
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:                    # (Ctrl-C too: the new file goes, no litter)
        os.remove(name)
        raise
    return name

def save_checkpoint(path, model, adam, **kept):
    """Write model, adam (and kept: the split, docs_seen) to path, atomically: a new file beside
    it, flushed to the disk, renamed over it in one step (a failed or interrupted save
    leaves the old as it was). Never over anything but a checkpoint, never unloadable."""
    _check_save_path(path)
    if _unusable(adam):
        raise _BadInput(f'{_unusable(adam)}: checkpoint {path!r} not written')
    config = {k: getattr(model.config, k) for k in _SHAPE}   # (the vocabulary: in 'chars')
    text = json.dumps(dict(format=_FORMAT, config=config, chars=model.tokenizer.chars,
                           step=adam.t, adam_m=adam.m, adam_v=adam.v,
                           state_dict={name: [[p.data for p in row] for row in matrix]
                                       for name, matrix in model.state_dict.items()}, **kept))
    target, tmp = os.path.realpath(path), None
    try:
        tmp = _write_beside(target, text)
        if os.path.exists(target):
            os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))   # keep its permissions
        os.replace(tmp, target)
    except OSError as e:
        raise _BadInput(f'cannot write checkpoint {path!r}: {e.strerror or e} (the file '
                        f'there is unchanged)')
    finally:                                 # (failed or interrupted: no litter)
        if tmp and os.path.exists(tmp):
            os.remove(tmp)

def _unusable(adam):
    """Why the weights adam trains would not load back, or None (1e6: diverged long ago)."""
    if not all(abs(p.data) < 1e6 for p in adam.params):
        return 'the weights grew past 1e6 (or to inf or nan)'
    if not all(abs(x) < math.inf for x in adam.m + adam.v):
        return "Adam's state became infinite or nan"

def load_checkpoint(path, weight_decay=0.0):
    """(the Model, its Adam) in save_checkpoint()'s file, all checked first: a damaged one,
    one line."""
    return _load(path, weight_decay)[:2]

def _load(path, weight_decay):
    """(the Model, its Adam, what the checkpoint kept: its split, docs_seen)."""
    data = _read_file(path, 'checkpoint', MAX_CHECKPOINT_BYTES)
    try:
        ck = json.loads(data.decode('utf-8'))
        model, adam = _model_from(ck, weight_decay)
    except (ValueError, RecursionError, KeyError, TypeError, AttributeError, IndexError) as e:
        why = (e if isinstance(e, (ValueError, RecursionError)) else f'it has no {e}'
               if isinstance(e, KeyError) else "its parts are not a model's")
        raise _BadInput(f'checkpoint {path!r} is damaged or not a microgpt checkpoint: {why}')
    return model, adam, {k: ck[k] for k in ('split', 'docs_seen') if k in ck}

def _need(ok, what):                         # (what is wrong, in the checkpoint's words)
    if not ok:
        raise ValueError(what)

def _model_from(ck, weight_decay):
    _need(isinstance(ck, dict) and ck.get('format') == _FORMAT, f"its 'format' is not {_FORMAT!r}")
    chars, shape, sd = ck['chars'], [ck['config'][k] for k in _SHAPE], ck['state_dict']
    _need(all(isinstance(c, str) and len(c) == 1 for c in chars) and chars == sorted(set(chars))
          and not set(chars) & {'\n', '\r'}, "'chars' is not a sorted list of distinct characters")
    _need(all(type(v) is int and 1 <= v <= _MOST[k] for k, v in zip(_SHAPE, shape))
          and shape[0] % shape[1] == 0, "'config' is not a model's shape")
    config = GPTConfig(len(chars) + 2, *shape)
    shapes = matrix_shapes(config)
    _need(list(sd) == list(shapes), f"'state_dict' has not the matrices of {config}")
    for name, (rows, cols) in shapes.items():
        _need(len(sd[name]) == rows and all(len(row) == cols for row in sd[name]),
              f'{name} is not a {rows} x {cols} matrix')
    numbers = [x for name in shapes for row in sd[name] for x in row] + ck['adam_m'] + ck['adam_v']
    _need(all(type(x) in (int, float) and abs(x) < 1e300 for x in numbers),
          "a weight or a number of Adam's is not a number below 1e300")
    state_dict = {name: [[Value(x) for x in row] for row in sd[name]] for name in shapes}
    adam = Adam(parameters(state_dict), weight_decay)
    adam.m, adam.v, adam.t = [float(x) for x in ck['adam_m']], [float(x) for x in ck['adam_v']], \
        ck['step']
    _need(len(adam.m) == len(adam.v) == len(adam.params) and min(adam.v, default=0) >= 0,
          "'adam_m' and 'adam_v' are not Adam's state for these weights")
    _need(type(adam.t) is int and 0 <= adam.t <= 10 ** 15, "its 'step' is not a count of steps")
    _need(type(ck.get('docs_seen', 0)) is int and ck.get('docs_seen', 0) >= 0,
          "its 'docs_seen' is not a count of documents")
    split = ck.get('split', {'seed': 0, 'val_fraction': 0})
    _need(type(split['seed']) is int and split['seed'] >= 0 and type(split['val_fraction'])
          in (int, float) and 0 <= split['val_fraction'] < 1, "its 'split' is not a split")
    _need(_unusable(adam) is None, _unusable(adam))
    return Model(config, Tokenizer(''.join(chars)), state_dict), adam

# --- Training, watched ----------------------------------------------------------------

class _Signals:
    """Ctrl-C and SIGTERM while main() runs: in training, the first asks for a stop after
    the step (self.stop: its number); a second, or one at another time, stops at once.
    Training pauses CPython's garbage collector (a step's graph has no cycles to find)."""

    stop, patient = None, False

    def __enter__(self):
        self.old = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self.old[signum] = signal.signal(signum, self.caught)
            except ValueError:               # (only the main thread may catch signals)
                pass
        self.collecting = gc.isenabled()
        return self

    def caught(self, signum, frame):
        if not self.patient or self.stop is not None:
            raise KeyboardInterrupt(signum)
        self.stop = signum

    def training(self, on):
        self.patient = on
        if on and sys.implementation.name == 'cpython':
            gc.disable()
        elif self.collecting:
            gc.enable()

    def __exit__(self, *exc):
        self.training(False)
        for signum, handler in self.old.items():
            signal.signal(signum, handler)

def _train_watched(model, adam, plan, s, signals):
    """Part I's train(), from where a checkpoint stopped, with between its steps progress,
    validation, checkpoints, a stop on Ctrl-C: {'train', 'val', 'ms', 'save_failed'}."""
    num_steps, every = s['num_steps'], s['eval_every']
    live = 'ipykernel' in type(sys.stdout).__module__ or getattr(sys.stdout, 'isatty', bool)()

    def show(text, keep=True):               # live (a terminal, a notebook): in place
        _say(f'\r{text:<70}' + '\r' * (not keep) if live else text, end='\n' * keep, flush=True)
    docs = [doc[:model.config.block_size] for doc in plan.train_docs]   # (all doc_loss reads)
    first = plan.start % len(docs) if docs else 0
    history = dict(train=[], val=[], ms=[], save_failed=False)
    eval_docs = [] if s['bench'] else plan.val_docs[:s['eval_docs']]
    _validate(model, eval_docs, 0, history, show, signals)
    if signals.stop is not None and num_steps:   # (Ctrl-C before any step: none taken)
        show('interrupted: stopped before step 1')
        return history
    signals.training(True)
    try:
        started = time.perf_counter()
        for step, loss in enumerate(train(model, adam, docs[first:] + docs[:first], num_steps,
                                          s['learning_rate'], s['warmup_steps'],
                                          s['batch_size']), start=1):
            history['ms'].append((time.perf_counter() - started) * 1000)
            history['train'].append(loss)
            _diverged(step, f'the loss became {loss}', loss)
            lr = lr_at(step - 1, num_steps, s['learning_rate'], s['warmup_steps'])
            keep = step == 1 or step % 50 == 0 or step == num_steps or signals.stop is not None
            if keep or live:                 # (in a pipe, the lines train_and_sample() prints)
                show(f'step {step:4d} / {num_steps} | loss {loss:.4f} | lr {lr:.1e} | '
                     f'{history["ms"][-1]:.0f} ms', keep)
            if step % every == 0 or step == num_steps:
                _validate(model, eval_docs, step, history, show, signals)
            if signals.stop is not None:
                show(f'interrupted: stopped after step {step}')
            done = step == num_steps or signals.stop is not None
            saving = s['save'] and (done or s['save_every'] and step % s['save_every'] == 0)
            if (done or saving) and _unusable(adam):   # (weights no loss has seen yet)
                _diverged(step, _unusable(adam))
            if saving:
                _save(model, adam, plan, s, step, show, history, done)
            if done:
                break
            started = time.perf_counter()
    except (OverflowError, ZeroDivisionError):   # a number past the floats' range
        _diverged(len(history['train']) + 1, 'the numbers overflowed')
    finally:
        signals.training(False)
        if live:                             # (a step's line left open: cleared)
            _say(' ' * 70 + '\r', end='', flush=True)
    return history

def _validate(model, docs, step, history, show, signals):
    """The mean of Part I's doc_loss() on held-out documents; Ctrl-C stops it at once."""
    if not docs or signals.stop is not None:
        return
    patient, signals.patient = signals.patient, False
    try:
        loss = sum(doc_loss(model.tokenizer.encode_doc(doc), model.state_dict, model.config)
                   .data for doc in docs) / len(docs)
    except KeyboardInterrupt as e:           # (as a stop after this step)
        signals.stop = e.args[0] if e.args else signal.SIGINT
        return
    finally:
        signals.patient = patient
    _diverged(step, f'the validation loss became {loss}', loss)
    history['val'].append((step, loss))
    show(f'validation loss {loss:.4f} (step {step}, {len(docs)} documents)')

def _diverged(step, what, x=math.nan):      # the one divergence rule: no finite number
    if not abs(x) < math.inf:
        raise _BadInput(f'{what} at step {step}: training diverged; try a smaller '
                        f'--learning_rate')

def _save(model, adam, plan, s, step, show, history, done):
    """A checkpoint; one that fails is said, and training goes on (ending with status 1)."""
    try:
        save_checkpoint(s['save'], model, adam, split=plan.split,
                        docs_seen=plan.start + step * s['batch_size'])
    except _BadInput as e:
        _complain(f'warning: {e}; training goes on')
        history['save_failed'] = True
        return
    if done:
        show(f"saved checkpoint {s['save']} (step {adam.t})")

# --- What a run prints after training: the curve, the summary, the samples ------------

def _loss_curve(history, width=60, height=10):
    """The losses against the step: o validation, * training as a running mean over a
    tenth of the steps (one step's loss alone jumps around too much to see a trend)."""
    losses, n = history['train'], len(history['train'])
    width, window = min(width, n), max(1, n // 10)
    points = [(c, statistics.mean(losses[max(0, (c + 1) * n // width - window):
                                         (c + 1) * n // width]), '*') for c in range(width)]
    points += [(min(step * width // n, width - 1), loss, 'o') for step, loss in history['val']]
    lo, hi = min(p[1] for p in points), max(p[1] for p in points)
    grid = [[' '] * width for _ in range(height)]
    for column, loss, mark in points:
        grid[round((hi - loss) / (hi - lo or 1.0) * (height - 1))][column] = mark
    return '\n'.join([f'loss curve (* train: running mean of {window} steps; o validation)']
                     + [f'{hi - r * (hi - lo) / (height - 1):6.2f} |' + ''.join(row)
                        for r, row in enumerate(grid)]
                     + ['       +' + '-' * width, f'        0{n:>{max(width - 1, 8)}} steps'])

def _summary(history):
    losses = history['train']
    recent = losses[-max(1, len(losses) // 10):]
    line = (f'after {len(losses)} steps: train loss {statistics.mean(recent):.4f} (mean of '
            f'the last {len(recent)})')
    if history['val']:
        step, loss = history['val'][-1]
        line += f', validation loss {loss:.4f}' + f' (at step {step})' * (step != len(losses))
    return line + f', {statistics.median(history["ms"]):.1f} ms per step (median)'

def _print_samples(model, plan, s):
    """Part I's sample(), as train_and_sample() draws; each marked if it is not new."""
    train_set, val_set = set(plan.train_docs), set(plan.val_docs) - set(plan.train_docs)
    _say(f"--- {s['num_samples']} samples (temperature {s['temperature']:g}) ---")
    rng, copied, held_out = random.Random(s['seed']), 0, 0
    for _ in range(s['num_samples']):
        doc = sample(model.state_dict, model.tokenizer, model.config, rng, s['temperature'],
                     s['prompt'])
        copied, held_out = copied + (doc in train_set), held_out + (doc in val_set)
        mark = ('in the training data' if doc in train_set else
                'in the validation data: real, never trained on' if doc in val_set else '')
        _say(f'{doc}   ({mark})' if mark else doc)
    _say(f"{s['num_samples'] - copied - held_out} of {s['num_samples']} samples are new; "
         f'{copied} in the training data, {held_out} in the validation data')

# --- Views inside the engine -----------------------------------------------------------

def backward_table(root, **names):
    """backward() from root, in its order, node by node: op, value, grad, and what it
    adds to each child (local grad x grad), to redo by hand. names: {name: Value} shown
    by name; the others #1, #2... as made (inputs in1, in2...). Runs backward() if not."""
    if root.grad == 0:
        root.backward()
    order = topological_order(root)      # children first, as made
    label = {id(v): name for name, v in names.items() if isinstance(v, Value)}
    for i, node in enumerate(order, start=1):
        label.setdefault(id(node), f'#{i}')
    inputs = list({id(c): c for node in order for c in node.children if not c.children}.values())
    for i, v in enumerate(inputs, start=1):
        label.setdefault(id(v), f'in{i}')
    rows = [f'backward() from {label[id(root)]}: the nodes in the order it visits them; grad '
            f'= d {label[id(root)]} / d node',
            f'  {"node":<6} {"op":<8} {"value":>10} {"grad":>10}   adds: child.grad += local '
            f'grad x grad']
    for node in reversed(order):
        op = node.op                         # a + c, c a plain number (sum() adds 0 first)
        if op == '+' and len(node.children) == 1:
            op = f'+ {node.data - node.children[0].data:.6g}'
        rows.append(f'  {label[id(node)]:<6} {op:<8} {node.data:>10.6g} {node.grad:>10.6g}   '
                    + ', '.join(f'{label[id(c)]} += {g:.6g} x {node.grad:.6g} = {g * node.grad:.6g}'
                                for c, g in zip(node.children, node.local_grads)))
    rows.append('inputs: ' + ', '.join(f'{label[id(v)]} = {v.data:.6g} (grad {v.grad:.6g})'
                                       for v in inputs))
    if any(row.split()[1:3] == ['+', '0'] for row in rows[2:]):
        rows.append('(+ 0: sum() starts from 0, so 0 + x is a node of its own; it passes '
                    'its grad on unchanged)')
    return '\n'.join(rows)

_EXAMPLES = ['a = 2; b = -3; c = a*b + a**2', 'z1 = 1; z2 = 2; z3 = 3; p1 = softmax(z1, z2, z3)[0]',
             'x1 = 3; x2 = 4; y1 = rmsnorm(x1, x2)[0]']
_FUNCTIONS = {'exp': lambda a: _as_value(a).exp(), 'log': lambda a: _as_value(a).log(),
              'relu': lambda a: _as_value(a).relu(),
              'softmax': lambda *a: softmax([_as_value(x) for x in a]),
              'rmsnorm': lambda *a: rmsnorm([_as_value(x) for x in a])}
_GRAMMAR = (ast.Module, ast.Expr, ast.Assign, ast.Name, ast.Load, ast.Store, ast.Constant,
            ast.BinOp, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.UnaryOp, ast.USub,
            ast.UAdd, ast.Call, ast.Subscript) + ((ast.Index,) if hasattr(ast, 'Index') else ())

def _as_value(x):
    return x if isinstance(x, Value) else Value(x)

def _literal(node):                          # the number in node (n, or -n), or None
    node = node.value if isinstance(node, getattr(ast, 'Index', ())) else node   # (3.8)
    node = getattr(node, 'operand', node)
    return node if isinstance(node, ast.Constant) else None

def _backward_examples(text):
    """backward_table() of a typed computation (or of the three examples): statements
    of numbers, names, + - * / **, exp, log, relu, softmax(...)[i] and rmsnorm(...)[i],
    nothing else (no attribute, no other name: no way to run other code), computed
    with Values one statement at a time. Numbers are floats below 1e100, so nothing
    runs long (2**10**10 overflows at once); every failure is one line."""
    tables = []
    for source in [text] if text else _EXAMPLES:
        try:
            if len(source) > 999 or source.count('(') + source.count('[') > 90:  # (3.8's parser)
                raise _BadInput(f'{source[:40]!r}...: longer than 999 characters or 90 brackets')
            tree, names, last = ast.parse(source), {}, None
            for node in ast.walk(tree):
                if not isinstance(node, _GRAMMAR) or isinstance(node, ast.Call) and (
                        getattr(node.func, 'id', '') not in _FUNCTIONS or node.keywords) or \
                        isinstance(node, ast.Constant) and not (type(node.value) in (
                            int, float) and abs(node.value) < 1e100):
                    raise _BadInput(f'{source[:60]!r}: use numbers (below 1e100), names, + - * '
                                    f'/ **, exp, log, relu, softmax(...)[i], rmsnorm(...)[i]')
            ints = {id(_literal(n.slice)) for n in ast.walk(tree) if isinstance(n, ast.Subscript)}
            ints |= {id(_literal(n.right)) for n in ast.walk(tree) if isinstance(n, ast.BinOp)
                     and isinstance(n.op, ast.Pow) and abs(getattr(_literal(n.right), 'value',
                                                               101)) <= 100}   # [i], a**2
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and id(node) not in ints:
                    node.value = float(node.value)      # (no integer of a million digits)
            for statement in tree.body:
                last = eval(compile(ast.Expression(statement.value), '<computation>', 'eval'),
                            {'__builtins__': {}, **_FUNCTIONS}, dict(names))
                last = Value(last) if isinstance(last, float) else last
                for target in getattr(statement, 'targets', []):
                    names[target.id] = last
        except (SyntaxError, ArithmeticError, ValueError, TypeError, NameError, LookupError,
                RecursionError, MemoryError) as e:
            if isinstance(e, _BadInput):
                raise
            why = ('division by 0' if isinstance(e, ZeroDivisionError) else 'a negative number '
                   'to a fractional power' if 'complex' in str(e) else getattr(e, 'msg', None)
                   or (e.args[-1] if e.args else e))
            raise _BadInput(f'cannot compute {source!r}: {why}')
        if not isinstance(last, Value) or not last.children:
            raise _BadInput(f'{source!r}: the last line must compute one number (as a * b, or '
                            f'softmax(...)[0]: not a number alone, nor softmax(...))')
        tables.append(f'>>> {source}\n' + backward_table(last, **names))
    return '\n\n'.join(tables)

def _gradients(model, doc):
    """doc_loss() of doc and its backward(): the loss; every parameter holds its grad."""
    for p in parameters(model.state_dict):
        p.grad = 0.0
    loss = doc_loss(model.tokenizer.encode_doc(doc), model.state_dict, model.config)
    loss.backward()
    return loss.data

def gradient_check(model, doc, per_matrix=2, eps=1e-6):
    """backward()'s gradient of the largest few parameters of every matrix beside the
    central difference of the loss: (loss(w + eps) - loss(w - eps)) / 2 eps."""
    loss, tokens, worst = _gradients(model, doc), model.tokenizer.encode_doc(doc), 0.0
    rows = [f'gradient check on {doc!r} (loss {loss:.6f}): backward() against a central '
            f'difference of the loss, eps {eps:g}',
            f'  {"parameter":<24} {"backward()":>15} {"difference":>15}  relative gap']
    for name, matrix in model.state_dict.items():
        for _, r, c in sorted(((abs(p.grad), r, c) for r, row in enumerate(matrix)
                               for c, p in enumerate(row)), reverse=True)[:per_matrix]:
            p, kept = matrix[r][c], matrix[r][c].data
            try:
                numeric = numerical_grad(lambda: doc_loss(tokens, model.state_dict,
                                                          model.config), p, eps)
            finally:                         # (Ctrl-C too: the weight is left as it was)
                p.data = kept
            gap = abs(p.grad - numeric) / max(abs(p.grad), abs(numeric), 1e-12)
            worst = max(worst, gap)
            rows.append(f'  {f"{name}[{r}][{c}]":<24} {p.grad:>15.9f} {numeric:>15.9f}  '
                        f'{gap:.1e}' + ('' if gap < 1e-4 else '  <- DIFFERENT'))
    for p in parameters(model.state_dict):
        p.grad = 0.0
    return '\n'.join(rows + [f'largest relative gap {worst:.1e}: ' + (
        'the gradients agree (a gap below 1e-4: the rounding of the difference)' if worst < 1e-4
        else 'a gradient is WRONG: a derivative does not match what its node computes')])

_SHADES = ' .:-=+*#%@'

def _shade(x, top):
    """x as a shade: '@' for top, each one left half a power of ten less, ' ' for 0."""
    return _SHADES[max(0, 9 + round(2 * math.log10(x / top)))] if x > 0 else ' '

def gradient_map(model, doc):
    """The size of one document's gradient in each matrix, each row of wte and of wpe."""
    loss, sd = _gradients(model, doc), model.state_dict
    size = lambda rows: math.sqrt(sum(p.grad ** 2 for row in rows for p in row))
    norms = {name: size(matrix) for name, matrix in sd.items()}
    read = min(len(doc) + 1, model.config.block_size)         # the positions doc_loss reads,
    tokens = set(model.tokenizer.encode_doc(doc)[:read + 1])  # their tokens and targets
    rows, places = [size([row]) for row in sd['wte']], [size([row]) for row in sd['wpe']]
    out = [f'where the gradient of the loss of {doc!r} goes (loss {loss:.4f}):', 'per matrix:']
    out += [f'  {name:<18} {norm:9.5f} ' + '#' * round(40 * norm / (max(norms.values()) or 1))
            for name, norm in norms.items()]
    out += [f"wte, a row per token, shaded by size: @ is the largest ({max(rows):.2g}), each of "
            f"'{_SHADES[8:0:-1]}' 3.2 times less than the one before; blank: less still",
            '  ' + ''.join(['^', '$'] + [c if c.isprintable() else '?' for c in
                                         model.tokenizer.chars]),
            '  ' + ''.join(_shade(g, max(rows)) for g in rows),
            '  ' + ''.join('*' if i in tokens else ' ' for i in range(len(rows)))
            + '  <- * the tokens it reads or predicts (^ <BOS>, $ <EOS>)',
            f'  mean row size: {statistics.mean(rows[i] for i in tokens):.5f} for those, '
            f'{statistics.mean([g for i, g in enumerate(rows) if i not in tokens] or [0]):.5f} for '
            f'the others (scored as outputs too: weight tying)',
            'wpe, a row per position:', '  ' + ''.join(str(i % 10) for i in range(len(places))),
            '  ' + ''.join(_shade(g, max(places)) for g in places)
            + f'  <- {doc!r} reads positions 0-{read - 1}; the others get '
            + ('none' if not any(places[read:]) else 'some')]
    for p in parameters(model.state_dict):
        p.grad = 0.0
    return '\n'.join(out)

def embedding_map(model, width=60, height=18):
    """The tokens on a map of their embeddings (wte rows): across and down, the two
    directions in which the rows, centred, differ most (found by power iteration)."""
    rows = [[p.data for p in row] for row in model.state_dict['wte']]
    n, mean = len(rows[0]), [statistics.mean(col) for col in zip(*rows)]
    centred = [[x - m for x, m in zip(row, mean)] for row in rows]
    cov = [[sum(r[i] * r[j] for r in centred) for j in range(n)] for i in range(n)]
    total, directions, shares = sum(cov[i][i] for i in range(n)) or 1.0, [], []
    for _ in range(2):
        v = [1.0 + i / n for i in range(n)]                  # any start but 0
        for _ in range(200):
            w = [sum(c * x for c, x in zip(row, v)) for row in cov]
            v = [x / (math.sqrt(sum(y * y for y in w)) or 1.0) for x in w]
        share = sum(v[i] * cov[i][j] * v[j] for i in range(n) for j in range(n))
        cov = [[cov[i][j] - share * v[i] * v[j] for j in range(n)] for i in range(n)]
        directions.append(v)
        shares.append(share / total)
    points = [[sum(x * d for x, d in zip(row, v)) for v in directions] for row in centred]
    (x_lo, y_lo), (x_hi, y_hi) = map(min, zip(*points)), map(max, zip(*points))
    grid = [[' '] * width for _ in range(height)]
    marks = ['^', '$'] + [c if c.isprintable() and c != ' ' else '?' for c in model.tokenizer.chars]
    for mark, (x, y) in zip(marks, points):
        r = round((y_hi - y) / ((y_hi - y_lo) or 1) * (height - 1))
        c = round((x - x_lo) / ((x_hi - x_lo) or 1) * (width - 1))
        free = [col for col in sorted(range(width), key=lambda col: abs(col - c))
                if grid[r][col] == ' ']              # the nearest free cell of its row
        grid[r][free[0] if free else c] = mark
    return '\n'.join([f'the tokens by their embeddings (^ <BOS>, $ <EOS>): across, the '
                      f'direction of {shares[0]:.0%} of their spread; down, {shares[1]:.0%}']
                     + ['  |' + ''.join(row) for row in grid] + ['  +' + '-' * width])

# --- Views inside the model: attention, the next token --------------------------------
# Attention's numbers are read from the graph gpt() builds, not computed again: head h's
# output j is dot(weights, [v_s[j] for each s]): its children are the weights, then values
# from the cache; the score of position s is dot(q_h, k_s): the query, then a cached key.

def _forward(model, text):
    """gpt() over <BOS> + text: ([each position's dot products, by their second vector's
    first Value and length], the cache)."""
    config, tokens = model.config, [Tokenizer.BOS] + model.tokenizer.encode(text)
    cache, found = [([], []) for _ in range(config.n_layer)], []
    for pos, token in enumerate(tokens):
        first = Value(0).number               # what this call makes comes after it
        nodes, stack = {}, [gpt(token, pos, cache, model.state_dict, config)[0]]
        while stack:
            for child in stack.pop().children:
                if child.number > first and id(child) not in nodes:
                    nodes[id(child)] = child
                    stack.append(child)
        found.append({(id(n.children[len(n.children) // 2]), len(n.children) // 2): n
                      for n in nodes.values() if n.op == 'dot'})
    return found, cache

def _dot_ending(dots, tail):
    """The dot product whose second vector is tail (those very Values, not copies)."""
    node = dots[id(tail[0]), len(tail)]
    _need(all(a is b for a, b in zip(node.children[len(tail):], tail)), 'not that dot product')
    return node

def _attention_weights(model, text):
    """[position][layer][head]: each head's weights over the positions so far."""
    d = model.config.n_embd // model.config.n_head
    found, cache = _forward(model, text)
    return [[[[w.data for w in _dot_ending(dots, [v[h * d] for v in values[:pos + 1]])
               .children[:pos + 1]] for h in range(model.config.n_head)]
             for _, values in cache] for pos, dots in enumerate(found)]

def _head_roles(model, docs):
    """{(layer, head): (what it reads most, share)}: its mean weight over docs on <BOS>,
    on the token k back (k = 0: itself), from position 2 on (<BOS> then is not k back)."""
    seen = {}                                # (layer, head): {what it reads: [weights]}
    for doc in docs:
        weights = _attention_weights(model, doc[:model.config.block_size - 1])
        for pos in range(2, len(weights)):
            for i, heads in enumerate(weights[pos]):
                for h, w in enumerate(heads):
                    for key, x in [('<BOS>', w[0])] + [(k, w[pos - k]) for k in range(pos)]:
                        seen.setdefault((i, h), {}).setdefault(key, []).append(x)
    roles = {}
    for head, reads in seen.items():
        key, share = max(((k, statistics.mean(xs)) for k, xs in reads.items()),
                         key=lambda kv: kv[1])
        roles[head] = ('spread out' if share < 0.5 else key if key == '<BOS>' else
                       {0: 'itself', 1: 'the previous token'}.get(key, f'the token {key} back'),
                       share)
    return roles

def attention_maps(model, text, docs=()):
    """Each head's weights over text, a map of characters (rows read, columns are read),
    and what the head does over docs (up to 200 of them)."""
    config, weights = model.config, _attention_weights(model, text)
    roles, labels = _head_roles(model, docs[:200]) if docs else {}, '^' + text
    out = [f'attention over {text!r} (^ is <BOS>; rows read, columns are read; darker is more '
           f"weight, '{_SHADES}' from 0 to 1 by tenths)"]
    for i in range(config.n_layer):
        for h in range(config.n_head):
            title = f'layer {i} head {h}'
            if (i, h) in roles:
                role, share = roles[i, h]
                title += (f': reads {role}, {share:.0%} of its weight' if role != 'spread out'
                          else f': spread out (at most {share:.0%} on <BOS> or on any one '
                               f'token k back)') + f', over {min(len(docs), 200)} documents'
            out += [title, '   ' + labels] + [
                f' {labels[pos]} ' + ''.join(_SHADES[min(int(w * 10), 9)] if w == w else '?'
                                             for w in weights[pos][i][h])
                for pos in range(len(labels))]
    return '\n'.join(out)

def attention_by_hand(model, text, head=0):
    """Layer 0's head over <BOS> + text, a position at a time, with every number to redo
    by hand: q, the k and v it adds to the cache, the scores, weights, the output."""
    d = model.config.n_embd // model.config.n_head
    found, ((keys, values), *_) = _forward(model, text)
    part = lambda vector: vector[head * d:(head + 1) * d]    # this head's numbers
    show = lambda xs: '[' + ', '.join(f'{x.data:+.3f}' for x in xs) + ']'
    names = ['<BOS>'] + list(text)
    out = [f'layer 0, head {head}: numbers {head * d} to {head * d + d - 1} of each q, k and v; '
           f'a score is q . k / sqrt({d})']
    for pos, dots in enumerate(found):
        scores = [_dot_ending(dots, part(k)) for k in keys[:pos + 1]]
        output = [_dot_ending(dots, [v[head * d + j] for v in values[:pos + 1]]) for j in range(d)]
        weights = output[0].children[:pos + 1]
        out += [f'position {pos}, reading {names[pos]}: q = {show(scores[0].children[:d])}; the '
                f'cache gets k{pos} = {show(part(keys[pos]))}, v{pos} = {show(part(values[pos]))}']
        out += [f'  score{s} = q . k{s} / {math.sqrt(d):g} = {x.data:+.3f} / {math.sqrt(d):g} = '
                f'{x.data / math.sqrt(d):+.3f}' for s, x in enumerate(scores)]
        out += ['  weights = softmax(scores) = [' + ', '.join(f'{w.data:.3f}' for w in weights)
                + ']', '  output = ' + ' + '.join(f'{w.data:.3f} v{s}' for s, w in
                                                 enumerate(weights)) + f' = {show(output)}']
    return '\n'.join(out)

def next_token_table(model, prefix, temperature, top=10):
    """The probabilities of the token after <BOS> + prefix at temperature 1 and at
    `temperature` (as sample() draws: logits / T, never <BOS>), from gpt() and softmax()."""
    config, tokens = model.config, [Tokenizer.BOS] + model.tokenizer.encode(prefix)
    cache = [([], []) for _ in range(config.n_layer)]
    for pos, token in enumerate(tokens):
        logits = gpt(token, pos, cache, model.state_dict, config)
    ids = [i for i in range(config.vocab_size) if i != Tokenizer.BOS]
    own, drawn = (softmax([logits[i] * (1 / t) for i in ids]) for t in (1.0, temperature))
    out = [f'the token after {prefix!r}: the {min(top, len(ids))} likeliest of {len(ids)}',
           f'  {"token":<6} {"T = 1":>6} {"":21} {f"T = {temperature:g}":>8}']
    for k in sorted(range(len(ids)), key=lambda k: -own[k].data)[:top]:
        out.append(f'  {model.tokenizer.tokens[ids[k]]:<6} {own[k].data:6.3f} '
                   f'{"#" * round(20 * own[k].data):<21} {drawn[k].data:8.3f} '
                   + '#' * round(20 * drawn[k].data))
    return '\n'.join(out)

def _print_views(model, plan, s):
    for name, view in (('show_next', lambda t: next_token_table(model, t, s['temperature'])),
                       ('attention_by_hand', lambda t: attention_by_hand(model, t)),
                       ('show_embeddings', lambda t: embedding_map(model)),
                       ('show_attention', lambda t: attention_maps(model, t, plan.val_docs)),
                       ('show_gradients', lambda t: gradient_map(model, t)),
                       ('gradcheck', lambda t: gradient_check(model, t))):
        if s[name] not in (None, False):
            _say(view(plan.texts.get(name)))

# --- Benchmark: the speed of a training step, for anyone to rerun ---------------------

def _bench_report(model, plan, s, history):
    """ms per step; the graph per step (built again for steps 1, 11, ...); peak memory."""
    docs, B, sizes = plan.train_docs, s['batch_size'], []
    for step in range(0, len(history['ms']), 10):
        batch = [docs[(plan.start + step * B + b) % len(docs)] for b in range(B)]
        nodes = topological_order(sum(doc_loss(model.tokenizer.encode_doc(doc), model.state_dict,
                                               model.config) for doc in batch) / B)  # train()'s
        leaves = {id(c) for node in nodes for c in node.children if not c.children}
        sizes.append((len(nodes) + len(leaves), sum(len(node.children) for node in nodes)))
    try:
        import resource                      # (Unix; its peak: kB on Linux, bytes on macOS)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = f'{peak / (2 ** 20 if sys.platform == "darwin" else 2 ** 10):.1f} MB'
    except ImportError:
        peak = 'unknown here'
    ms, shape = history['ms'], ', '.join(f'{k} {getattr(model.config, k)}' for k in _SHAPE)
    return '\n'.join([
        f'bench: {len(ms)} steps, {shape}, batch_size {B}, {sys.implementation.name} '
        f'{".".join(map(str, sys.version_info[:3]))}',
        f'ms per step: median {statistics.median(ms):.2f} (min {min(ms):.2f}, max {max(ms):.2f})',
        f'graph per step: {sum(n for n, _ in sizes) // len(sizes)} nodes, '
        f'{sum(e for _, e in sizes) // len(sizes)} edges (mean of steps 1, 11, 21, ...)',
        f'peak memory: {peak}'])

# --- main(): the command line; every error one line ------------------------------------
_CONTROLS = {c: f'\\x{c:02x}' for c in [*range(32), *range(127, 160)] if chr(c) not in '\n\r\t'}

def _say(text='', end='\n', flush=False):
    """print(), with the data's control characters escaped, and any character shown."""
    encoding = getattr(sys.stdout, 'encoding', None) or 'utf-8'
    print(text.translate(_CONTROLS).encode(encoding, 'backslashreplace').decode(encoding),
          end=end, flush=flush)

def _complain(text):
    """One line on stderr (after ^C, on a line of its own), even if stderr fails."""
    lead = '\n' if text.startswith('\n') else ''
    try:
        print(lead + text.lstrip('\n').translate({**_CONTROLS, 10: '\\n', 13: '\\r'}),
              file=sys.stderr, flush=True)
    except (OSError, ValueError, AttributeError):
        pass

def main(argv=None):
    """Run microgpt with flags: main() reads sys.argv, main([...]) a list. Returns the exit
    status: 0 done, 1 an unwritten checkpoint or output, 2 bad input (one line on stderr),
    130 (143) stopped by Ctrl-C (SIGTERM). Signal handlers and gc are left as found."""
    if argv is None:                         # (in a notebook, argv is the kernel's, not %run's)
        ours = '__file__' in globals() and os.path.abspath(sys.argv[0]) == os.path.abspath(__file__)
        argv = sys.argv[1:] if ours or 'ipykernel' not in sys.modules else []
    argv = argv.split() if isinstance(argv, str) else [str(a) for a in argv]   # (notebooks)
    try:
        with _Signals() as signals:
            try:
                return _run(argv, signals)
            except KeyboardInterrupt as e:
                _complain('\ninterrupted')
                return 128 + (e.args[0] if e.args else signal.SIGINT)
    except SystemExit as e:                  # --help
        return e.code or 0
    except _BadInput as e:
        _complain(f'error: {e}')
        return 2
    except MemoryError:
        _complain('error: out of memory')
        return 2
    except BrokenPipeError:                  # (a closed pipe: below)
        raise
    except OSError as e:                     # the output: a full disk
        _complain(f'error: cannot write the output: {e.strerror or e}')
        return 1

def _run(argv, signals):
    s, given = _settings(argv)
    if s['show_backward'] is not None:       # the engine alone: no data, no model
        _say(_backward_examples(s['show_backward']))
        return 0
    plan = _prepare(s, given)
    model, adam = plan.model, plan.adam
    _say(f'{len(plan.train_docs)} training documents, {len(adam.params)} parameters')
    _say(f'(the workbench: {plan.path}, {len(plan.val_docs)} documents held out; '
         + (f'{s["load"]}, trained {adam.t} steps; ' if s['load'] else '')
         + f'{model.config})')
    history = _train_watched(model, adam, plan, s, signals)
    if s['save'] and not s['num_steps']:
        save_checkpoint(s['save'], model, adam, split=plan.split, docs_seen=plan.start)
    status = 128 + signals.stop if signals.stop else 1 if history['save_failed'] else 0
    if s['bench']:
        _say(_bench_report(model, plan, s, history))
        return status
    if history['train']:
        _say(_loss_curve(history))
        _say(_summary(history))
    if s['num_samples']:
        _print_samples(model, plan, s)
    _print_views(model, plan, s)
    return status


if __name__ == '__main__':
    if _SCRIPT and sys.implementation.name == 'pypy' and 'PYPY_GC_NURSERY' not in os.environ:
        os.execve(sys.executable, [sys.executable] + sys.argv,   # PyPy's young generation: as
                  dict(os.environ, PYPY_GC_NURSERY='4MB'))       # big as the CPU cache a VM
    try:                                                         # reports (1.3x slower here)
        status = main()
    except BrokenPipeError:                  # `python microgpt.py | head`: end quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = 141
    if _SCRIPT:                              # (then python -i's prompt takes Ctrl-C again)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if not sys.flags.inspect:            # (python -i: to its prompt, no SystemExit)
            sys.exit(status)
