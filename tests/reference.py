"""The straightforward reference: the same GPT built only from binary Value ops.

An independent implementation for the tests and for tests/bench_speed.py. It
shares no code with microgpt.py, so agreeing with it means something.

RefValue is the scalar autograd engine as most from-scratch tutorials write it
(micrograd's engine.py): one node per +, *, **, exp, ...; each node's backward
step is a closure made in the forward pass; a plain class (no __slots__); a
recursive topological sort. SlotValue is the same engine tuned the easy ways
(__slots__, local derivatives stored instead of closures), still one node per
binary op: tests/bench_speed.py times both, to show what fused nodes add.
The model below is microgpt.py's, written out op by op, with no fused nodes.
"""
import math
import sys


def topological_sort(root, children_of):
    topo, visited = [], set()

    def build_topo(v):
        if v not in visited:
            visited.add(v)
            for child in children_of(v):
                build_topo(child)
            topo.append(v)
    old_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old_limit, 100000))
    try:
        build_topo(root)
    finally:
        sys.setrecursionlimit(old_limit)
    return topo


class RefValue:
    def __init__(self, data, _children=()):
        self.data = data
        self.grad = 0.0
        self._backward = lambda: None
        self._prev = set(_children)

    def __add__(self, other):
        other = other if isinstance(other, RefValue) else RefValue(other)
        out = RefValue(self.data + other.data, (self, other))

        def _backward():
            self.grad += out.grad
            other.grad += out.grad
        out._backward = _backward
        return out

    def __mul__(self, other):
        other = other if isinstance(other, RefValue) else RefValue(other)
        out = RefValue(self.data * other.data, (self, other))

        def _backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
        out._backward = _backward
        return out

    def __pow__(self, k):
        out = RefValue(self.data ** k, (self,))

        def _backward():
            self.grad += k * self.data ** (k - 1) * out.grad
        out._backward = _backward
        return out

    def exp(self):
        out = RefValue(math.exp(self.data), (self,))

        def _backward():
            self.grad += out.data * out.grad
        out._backward = _backward
        return out

    def log(self):
        out = RefValue(math.log(self.data), (self,))

        def _backward():
            self.grad += out.grad / self.data
        out._backward = _backward
        return out

    def relu(self):
        out = RefValue(max(0.0, self.data), (self,))

        def _backward():
            self.grad += (out.data > 0) * out.grad
        out._backward = _backward
        return out

    def __neg__(self): return self * -1.0
    def __radd__(self, other): return self + other
    def __sub__(self, other): return self + (-other)
    def __rsub__(self, other): return other + (-self)
    def __rmul__(self, other): return self * other
    def __truediv__(self, other): return self * other ** -1
    def __rtruediv__(self, other): return other * self ** -1

    def backward(self):
        topo = topological_sort(self, lambda v: v._prev)
        self.grad = 1.0
        for v in reversed(topo):
            v._backward()


class SlotValue:
    __slots__ = ('data', 'grad', '_children', '_local_grads')

    def __init__(self, data, children=(), local_grads=()):
        self.data = data
        self.grad = 0.0
        self._children = children
        self._local_grads = local_grads

    def __add__(self, other):
        other = other if isinstance(other, SlotValue) else SlotValue(other)
        return SlotValue(self.data + other.data, (self, other), (1.0, 1.0))

    def __mul__(self, other):
        other = other if isinstance(other, SlotValue) else SlotValue(other)
        return SlotValue(self.data * other.data, (self, other), (other.data, self.data))

    def __pow__(self, k):
        return SlotValue(self.data ** k, (self,), (k * self.data ** (k - 1),))

    def exp(self):
        return SlotValue(math.exp(self.data), (self,), (math.exp(self.data),))

    def log(self):
        return SlotValue(math.log(self.data), (self,), (1.0 / self.data,))

    def relu(self):
        return SlotValue(max(0.0, self.data), (self,), (float(self.data > 0),))

    __neg__, __radd__, __sub__, __rsub__ = RefValue.__neg__, RefValue.__radd__, RefValue.__sub__, RefValue.__rsub__
    __rmul__, __truediv__, __rtruediv__ = RefValue.__rmul__, RefValue.__truediv__, RefValue.__rtruediv__

    def backward(self):
        topo = topological_sort(self, lambda v: v._children)
        self.grad = 1.0
        for v in reversed(topo):
            for child, local_grad in zip(v._children, v._local_grads):
                child.grad += local_grad * v.grad


def to_ref(weights, engine=RefValue):
    """{name: rows of floats} -> {name: rows of engine values (RefValue or SlotValue)}."""
    return {name: [[engine(x) for x in row] for row in matrix] for name, matrix in weights.items()}


def ref_linear(x, w):
    return [sum(wi * xi for wi, xi in zip(row, x)) for row in w]


def ref_softmax(logits):
    m = max(z.data for z in logits)
    exps = [(z - m).exp() for z in logits]
    total = sum(exps)
    return [e / total for e in exps]


def ref_rmsnorm(x):
    ms = sum(xi * xi for xi in x) / len(x)
    scale = (ms + 1e-5) ** -0.5
    return [xi * scale for xi in x]


def ref_gpt(token_id, pos_id, keys, values, sd, n_head):
    x = [t + p for t, p in zip(sd['wte'][token_id], sd['wpe'][pos_id])]
    n_embd = len(x)
    head_dim = n_embd // n_head
    for i in range(len(keys)):
        x_res = x
        x = ref_rmsnorm(x)
        q = ref_linear(x, sd[f'layer{i}.attn_wq'])
        k = ref_linear(x, sd[f'layer{i}.attn_wk'])
        v = ref_linear(x, sd[f'layer{i}.attn_wv'])
        keys[i].append(k)
        values[i].append(v)
        x_attn = []
        for h in range(n_head):
            hs = h * head_dim
            q_h = q[hs:hs + head_dim]
            k_h = [ki[hs:hs + head_dim] for ki in keys[i]]
            v_h = [vi[hs:hs + head_dim] for vi in values[i]]
            attn_logits = [sum(q_h[j] * k_h[t][j] for j in range(head_dim)) / head_dim ** 0.5
                           for t in range(len(k_h))]
            attn_weights = ref_softmax(attn_logits)
            x_attn += [sum(attn_weights[t] * v_h[t][j] for t in range(len(v_h))) for j in range(head_dim)]
        x = ref_linear(x_attn, sd[f'layer{i}.attn_wo'])
        x = [a + b for a, b in zip(x, x_res)]
        x_res = x
        x = ref_rmsnorm(x)
        x = ref_linear(x, sd[f'layer{i}.mlp_fc1'])
        x = [xi.relu() ** 2 for xi in x]
        x = ref_linear(x, sd[f'layer{i}.mlp_fc2'])
        x = [a + b for a, b in zip(x, x_res)]
    x = ref_rmsnorm(x)
    return ref_linear(x, sd['wte'])


def ref_doc_loss(tokens, sd, n_head):
    tokens = tokens[:len(sd['wpe']) + 1]
    n_layer = sum(name.endswith('.attn_wq') for name in sd)
    keys, values = [[] for _ in range(n_layer)], [[] for _ in range(n_layer)]
    losses = []
    for pos in range(len(tokens) - 1):
        logits = ref_gpt(tokens[pos], pos, keys, values, sd, n_head)
        probs = ref_softmax(logits)
        losses.append(-probs[tokens[pos + 1]].log())
    return sum(losses) * (1.0 / len(losses))
