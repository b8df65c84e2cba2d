"""microgpt against PyTorch: the same model written independently with torch's
own operators (scaled_dot_product_attention, rms_norm, cross_entropy, autograd,
Adam and AdamW), in float64. Skipped when torch is not installed."""
import random
import unittest

import microgpt
from tests import random_weights, weights_of

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    torch = None

REL = 1e-9


def torch_logits(W, tokens, n_head, n_layer):
    """The logits at every position of tokens, all positions at once: (T, vocab_size).
    W maps microgpt's names to float64 tensors (rows = output features)."""
    T = len(tokens)
    n_embd = W['wte'].shape[1]
    head_dim = n_embd // n_head
    norm = lambda x: F.rms_norm(x, (n_embd,), eps=1e-5)          # rmsnorm(): no learned gain

    def heads(t):                                  # (T, n_embd) -> (n_head, T, head_dim)
        return t.view(T, n_head, head_dim).transpose(0, 1)

    x = W['wte'][tokens] + W['wpe'][:T]            # every position's x, at once
    for i in range(n_layer):
        h = norm(x)
        q, k, v = (heads(h @ W[f'layer{i}.attn_{n}'].T) for n in ('wq', 'wk', 'wv'))
        # softmax(q . k / sqrt(head_dim)) weighs the values; is_causal hides the future
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + y.transpose(0, 1).reshape(T, n_embd) @ W[f'layer{i}.attn_wo'].T
        x = x + F.relu(norm(x) @ W[f'layer{i}.mlp_fc1'].T) ** 2 @ W[f'layer{i}.mlp_fc2'].T
    return norm(x) @ W['wte'].T                    # weight tying: wte scores the outputs


def new_model(n_layer, n_embd, n_head, block_size, seed):
    """(config, state_dict) of a microgpt model with random weights, vocabulary VOCAB."""
    config = microgpt.GPTConfig(VOCAB, n_embd, n_head, n_layer, block_size)
    return config, random_weights(microgpt.init_state_dict(config), seed=seed)


def torch_weights(state_dict):
    return {name: torch.tensor(rows, dtype=torch.float64, requires_grad=True)
            for name, rows in weights_of(state_dict).items()}


def torch_doc_loss(W, tokens, n_head, n_layer):
    tokens = tokens[:W['wpe'].shape[0] + 1]
    logits = torch_logits(W, torch.tensor(tokens[:-1]), n_head, n_layer)
    return F.cross_entropy(logits, torch.tensor(tokens[1:]))              # the mean over positions


CONFIGS = [  # n_layer, n_embd, n_head, block_size: with documents that fit and that get cropped
    (1, 16, 4, 16),
    (1, 8, 1, 4),
    (3, 8, 2, 6),
    (3, 12, 4, 16),
]
VOCAB = 9


def documents(rng, count=3):
    return [[0] + [rng.randrange(2, VOCAB) for _ in range(rng.randint(1, 12))] + [1] for _ in range(count)]


@unittest.skipIf(torch is None, 'PyTorch is not installed (pip install torch==2.13.0)')
class TestTorchParity(unittest.TestCase):

    def assert_close(self, got, want, what):
        self.assertLessEqual(abs(got - want), REL * max(abs(want), 1e-3), f'{what}: {got!r} vs torch {want!r}')

    def test_logits_at_every_position(self):
        rng = random.Random(1)
        for n_layer, n_embd, n_head, block_size in CONFIGS:
            config, sd = new_model(n_layer, n_embd, n_head, block_size, seed=n_layer)
            W = torch_weights(sd)
            for tokens in documents(rng):
                tokens = tokens[:block_size]
                with self.subTest(config=(n_layer, n_embd, n_head, block_size), tokens=tokens):
                    want = torch_logits(W, torch.tensor(tokens), n_head, n_layer).tolist()
                    cache = [([], []) for _ in range(n_layer)]
                    for pos, token in enumerate(tokens):
                        got = microgpt.gpt(token, pos, cache, sd, config)
                        for j, z in enumerate(got):
                            self.assert_close(z.data, want[pos][j], f'logit {j} at position {pos}')

    def test_loss_and_every_gradient(self):
        rng = random.Random(2)
        for n_layer, n_embd, n_head, block_size in CONFIGS:
            for tokens in documents(rng):
                with self.subTest(config=(n_layer, n_embd, n_head, block_size), tokens=tokens):
                    config, sd = new_model(n_layer, n_embd, n_head, block_size, seed=len(tokens))
                    W = torch_weights(sd)
                    loss = microgpt.doc_loss(tokens, sd, config)
                    loss.backward()
                    want = torch_doc_loss(W, tokens, n_head, n_layer)
                    want.backward()
                    self.assert_close(loss.data, want.item(), 'loss')
                    for name, matrix in sd.items():
                        grads = W[name].grad.tolist()
                        for r, row in enumerate(matrix):
                            for c, p in enumerate(row):
                                self.assert_close(p.grad, grads[r][c], f'd loss / d {name}[{r}][{c}]')

    def test_adam_steps_with_warmup_decay_and_weight_decay(self):
        # three steps of a five-step schedule (two warmup steps, then linear decay)
        num_steps, warmup_steps, lr = 5, 2, 0.05
        rng = random.Random(3)
        docs = documents(rng, 3)
        for weight_decay, torch_optimizer in ((0.0, torch.optim.Adam), (0.1, torch.optim.AdamW)):
            with self.subTest(optimizer=torch_optimizer.__name__, weight_decay=weight_decay):
                config, sd = new_model(2, 8, 2, 8, seed=5)
                W = torch_weights(sd)
                adam = microgpt.Adam(microgpt.parameters(sd), weight_decay=weight_decay)
                opt = torch_optimizer(list(W.values()), lr=lr, betas=(0.85, 0.99), eps=1e-8,
                                      weight_decay=weight_decay)
                schedule = torch.optim.lr_scheduler.LambdaLR(
                    opt, lambda step: microgpt.lr_at(step, num_steps, lr, warmup_steps) / lr)
                for step, tokens in enumerate(docs):
                    microgpt.doc_loss(tokens, sd, config).backward()
                    adam.step(microgpt.lr_at(step, num_steps, lr, warmup_steps))
                    opt.zero_grad()
                    torch_doc_loss(W, tokens, 2, 2).backward()
                    opt.step()
                    schedule.step()
                for name, matrix in sd.items():
                    want = W[name].tolist()
                    for r, row in enumerate(matrix):
                        for c, p in enumerate(row):
                            self.assert_close(p.data, want[r][c], f'{name}[{r}][{c}] after {len(docs)} steps')
                self.assertTrue(all(p.grad == 0.0 for p in microgpt.parameters(sd)))

    def test_the_training_loop_takes_the_same_steps_as_torch(self):
        # microgpt.train as `python microgpt.py` runs it (one backward per step, for
        # the mean loss of batch_size documents), against torch's loop: any gradient
        # counted twice or missed, or a document skipped, shows up here
        num_steps, warmup_steps, lr = 4, 1, 0.02
        tokenizer = microgpt.Tokenizer('abcdefg')                 # VOCAB = 2 + 7 tokens
        for batch_size in (1, 3):
            with self.subTest(batch_size=batch_size):
                docs = [tokenizer.decode(tokens) for tokens in documents(random.Random(4), 7)]
                config, sd = new_model(2, 8, 2, 6, seed=6)
                W = torch_weights(sd)
                model = microgpt.Model(config, tokenizer, sd)
                adam = microgpt.Adam(microgpt.parameters(sd), weight_decay=0.01)
                losses = list(microgpt.train(model, adam, docs, num_steps, lr, warmup_steps,
                                             batch_size))
                opt = torch.optim.AdamW(list(W.values()), lr=lr, betas=(0.85, 0.99), eps=1e-8,
                                        weight_decay=0.01)
                schedule = torch.optim.lr_scheduler.LambdaLR(
                    opt, lambda step: microgpt.lr_at(step, num_steps, lr, warmup_steps) / lr)
                for step in range(num_steps):
                    batch = [docs[(step * batch_size + b) % len(docs)] for b in range(batch_size)]
                    opt.zero_grad()
                    loss = sum(torch_doc_loss(W, tokenizer.encode_doc(doc), 2, 2) for doc in batch)
                    (loss / batch_size).backward()
                    opt.step()
                    schedule.step()
                    self.assert_close(losses[step], loss.item() / batch_size, f'loss of step {step + 1}')
                for name, matrix in sd.items():
                    want = W[name].tolist()
                    for r, row in enumerate(matrix):
                        for c, p in enumerate(row):
                            self.assert_close(p.data, want[r][c], f'{name}[{r}][{c}] after training')


if __name__ == '__main__':
    unittest.main()
