"""microgpt.py pasted into a Jupyter notebook, run in a real kernel.
Skipped without nbclient, nbformat and ipykernel."""
import os
import re
import unittest

from tests import ROOT, SCRIPT

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
    nbclient.NotebookClient(nb, timeout=timeout, kernel_name='python3',
                            resources={'metadata': {'path': ROOT}}).execute()
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


def samples_of(text):
    return text.split(' ---\n')[-1].splitlines()


@unittest.skipIf(nbclient is None, 'nbclient, nbformat or ipykernel is not installed')
class TestNotebook(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        with open(SCRIPT, encoding='utf-8') as f:
            source = f.read()
        # cell 1: the whole file as one cell, as a teacher pastes it: it trains
        # with the defaults (1000 steps) and prints 20 names.
        # cell 2: a short run with flags, set without argv.
        # cell 3: the API, interactively.
        cls.outputs = run_notebook(source, "main(['--num_steps', '30', '--num_samples', '5', '--eval_docs', '20', "
                                           "'--prompt', 'an'])", API_CELL)

    def test_the_file_as_one_cell_runs_with_its_defaults(self):
        out = self.outputs[0]
        self.assertNotIn('ERROR', out)
        self.assertIn('3776 parameters: n_embd 16, n_head 4, n_layer 1, block_size 16', out)
        self.assertIn('step 1000/1000 | val loss', out)
        self.assertIn('\rstep 1000/1000 | loss', out)        # progress updates in place in a notebook
        samples = samples_of(out)
        self.assertEqual(len(samples), 20)
        self.assertTrue(all(re.fullmatch('[a-z]{0,16}', s) for s in samples), samples)

    def test_main_takes_flags_as_a_list(self):
        out = self.outputs[1]
        self.assertNotIn('ERROR', out)
        self.assertIn('step 30/30 | val loss', out)
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


API_CELL = '''
a, b = Value(-1.0), Value(-3.0)
c = a * b + a ** 2
c.backward()
print('a.grad =', a.grad)              # b + 2a = -3 - 2
tokenizer = Tokenizer(open('names.txt').read().replace('\\n', ''))
print('vocab =', tokenizer.vocab_size)
sd = init_state_dict(tokenizer.vocab_size, 16, 1, 16)
loss = doc_loss([Tokenizer.BOS] + tokenizer.encode('emma') + [Tokenizer.EOS], sd, n_head=4)
loss.backward()
print('loss =', loss.data)
import random
print('sample =', sample(sd, tokenizer, 4, random.Random(0), prompt='em'))
'''


if __name__ == '__main__':
    unittest.main()
