"""microgpt.py pasted into a Jupyter notebook, run in a real kernel.
Skipped without nbclient, nbformat and ipykernel."""
import re
import subprocess
import unittest

import microgpt
from tests import ROOT, SCRIPT, samples_of

try:
    import ipykernel  # noqa: F401  (the kernel nbclient starts)
    import nbclient
    import nbformat
except ImportError:
    nbclient = None


def run_notebook(*cells, timeout=600):
    """Execute the cells in a fresh python3 kernel started in the repository
    folder; return each cell's printed text."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nbclient.NotebookClient(nb, timeout=timeout, kernel_name='python3', allow_errors=True,
                            resources={'metadata': {'path': ROOT}},
                            kernel_kwargs={'stderr': subprocess.DEVNULL}).execute()   # (quiet)
    texts = []
    for cell in nb.cells:
        out = ''
        for output in cell.outputs:
            if output.output_type == 'stream':
                out += output.text
            elif output.output_type == 'error':
                out += f'ERROR {output.ename}: {output.evalue}'
        texts.append(out)
    return texts


@unittest.skipIf(nbclient is None, 'nbclient, nbformat or ipykernel is not installed')
class TestNotebook(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        with open(SCRIPT, encoding='utf-8') as f:
            source = f.read()
        # cell 1: the whole file as one cell, as a teacher pastes it: it trains
        # with the defaults and prints 20 names.
        # cell 2: a short run with flags, set without argv.
        # cell 3: the API, interactively.
        # cell 4: Part I's story, with other settings (no workbench around it).
        # cell 5: the file run with %run and flags: the flags count.
        # cell 6: a bad flag: one line of error, not SystemExit, nor a traceback.
        # cell 7: the views inside, on a model and on a Value built by hand.
        # cell 8: the kernel as it was: its Ctrl-C handler and its garbage collector.
        cls.outputs = run_notebook(
            'import gc, signal; before = (signal.getsignal(signal.SIGINT), gc.isenabled())\n'
            + source,
            "status = main(['--num_steps', '30', '--num_samples', '5', '--eval_docs', '20', "
            "'--prompt', 'an'])",
            API_CELL,
            "model = train_and_sample(num_steps=30, n_layer=2, num_samples=4)",
            '%run microgpt.py --num_steps 3 --num_samples 2 --eval_docs 2',
            "status = main(['--n_embd', '10']); print('status', status)",
            VIEWS_CELL,
            "print('as before:', (signal.getsignal(signal.SIGINT), gc.isenabled()) == before)")

    def test_the_file_as_one_cell_runs_with_its_defaults(self):
        out = self.outputs[0]
        self.assertNotIn('ERROR', out)
        steps = microgpt.DEFAULTS['num_steps']
        self.assertIn('GPTConfig(vocab_size=28, n_embd=16, n_head=4, n_layer=1, block_size=16)', out)
        self.assertIn('validation loss', out)
        self.assertIn(f'(step {steps}, 300 documents)', out)
        self.assertIn(f'\rstep  {steps} / {steps} | loss', out)  # progress in place in a notebook
        samples = samples_of(out)
        self.assertEqual(len(samples), 20)
        self.assertTrue(all(re.fullmatch('[a-z]{0,16}', s) for s in samples), samples)

    def test_main_takes_flags_as_a_list(self):
        out = self.outputs[1]
        self.assertNotIn('ERROR', out)
        self.assertIn('(step 30, 20 documents)', out)
        samples = samples_of(out)
        self.assertEqual(len(samples), 5)
        self.assertTrue(all(s.startswith('an') for s in samples), samples)

    def test_the_api_is_usable_interactively(self):
        out = self.outputs[2]
        self.assertNotIn('ERROR', out)
        values = dict(line.split(' = ') for line in out.splitlines())
        self.assertEqual(values['a.grad'], '-5.0')      # d(a*b + a**2)/da = b + 2a at a = -1, b = -3
        self.assertEqual(values['vocab'], '28')
        self.assertGreater(float(values['loss']), 2.5)
        self.assertTrue(values['sample'].startswith('em'))

    def test_the_story_function_runs_with_other_settings(self):
        out = self.outputs[3]
        self.assertNotIn('ERROR', out)
        self.assertIn('26919 training documents, 6848 parameters', out)   # (n_layer 2)
        self.assertIn('step   30 / 30 | loss', out)      # Part I's own progress line
        self.assertNotIn('\r', out)                       # no workbench: no line in place
        self.assertRegex(out, r'validation loss \d\.\d{4}\n')
        self.assertEqual(len(out.splitlines()), 8)         # steps 1 and 30, and 4 names

    def test_run_magic_passes_its_flags(self):
        out = self.outputs[4]
        self.assertNotIn('ERROR', out)
        self.assertIn('(step 3, 2 documents)', out)
        self.assertEqual(len(samples_of(out)), 2)

    def test_the_views_inside_work_on_anything_a_learner_builds(self):
        out = self.outputs[6]
        self.assertNotIn('ERROR', out)
        self.assertIn('backward() from c', out)
        self.assertIn('inputs: a = 2 (grad 1), b = -3 (grad 2)', out)
        self.assertIn('the gradients agree', out)
        self.assertIn("where the gradient of the loss of 'emma' goes", out)
        self.assertIn('the tokens by their embeddings', out)
        self.assertIn('layer 1 head 3', out)
        self.assertIn("the token after 'em'", out)
        self.assertIn('weights = softmax(scores)', out)

    def test_a_bad_flag_is_one_line_of_error_and_a_status(self):
        out = self.outputs[5]
        self.assertEqual(out, 'error: --n_embd 10 is not divisible by --n_head 4\nstatus 2\n')

    def test_the_kernel_is_left_as_it_was(self):
        self.assertEqual(self.outputs[7], 'as before: True\n')


API_CELL = '''
a, b = Value(-1.0), Value(-3.0)
c = a * b + a ** 2
c.backward()
print('a.grad =', a.grad)              # b + 2a = -3 - 2
tokenizer = Tokenizer(open('names.txt').read().replace('\\n', ''))
print('vocab =', tokenizer.vocab_size)
config = GPTConfig(tokenizer.vocab_size, n_embd=16, n_head=4, n_layer=1, block_size=16)
sd = init_state_dict(config)
loss = doc_loss(tokenizer.encode_doc('emma'), sd, config)
loss.backward()
print('loss =', loss.data)
import random
print('sample =', sample(sd, tokenizer, config, random.Random(0), prompt='em'))
'''

VIEWS_CELL = '''
model = train_and_sample(num_steps=30, n_layer=2, num_samples=0)   # (%run made new classes)
a, b = Value(2.0), Value(-3.0)
c = a * b + a ** 2
print(backward_table(c, a=a, b=b, c=c))
print(gradient_check(model, 'emma'))
print(gradient_map(model, 'emma'))
print(embedding_map(model))
print(attention_maps(model, 'emma', ['anna', 'otto']))
print(next_token_table(model, 'em', 0.5))
print(attention_by_hand(model, 'em'))
'''


if __name__ == '__main__':
    unittest.main()
