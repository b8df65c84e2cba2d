"""README.md is the user's first page: it must stay true to microgpt.py."""
import io
import os
import random
import re
import tokenize
import unittest

import microgpt
from tests import ROOT
from tests.update_readme import sections, updated


def read(name):
    with open(os.path.join(ROOT, name), encoding='utf-8') as f:
        return f.read()


class TestReadme(unittest.TestCase):

    def setUp(self):
        self.readme = read('README.md')
        self.maxDiff = 2000
        self.source = read('microgpt.py')
        self.lines = self.source.splitlines()

    def test_shows_the_two_commands(self):
        self.assertTrue('\npython microgpt.py ' in self.readme, '\npython microgpt.py ')
        self.assertTrue('\npython -m unittest ' in self.readme, '\npython -m unittest ')

    def test_its_line_numbers_are_the_files(self):
        new, missing = updated(self.readme, self.lines)
        self.assertEqual(missing, [])
        self.assertEqual(new, self.readme, "README.md's line numbers are stale: run "
                                           "python tests/update_readme.py")

    def test_the_file_map_lists_every_section_in_order(self):
        rows = re.findall(r'^\| (\d+)-(\d+) \| ([^|]+?) \|', self.readme, re.M)
        titles = [title.strip('* ') for _, _, title in rows]
        self.assertEqual(titles, list(sections(self.lines)))
        self.assertIn('Part II', titles)

    def test_the_path_names_each_section_of_part_one(self):
        stops = re.findall(r'sections? (\d)(?:-(\d))? \(lines', self.readme)
        covered = sorted({n for a, b in stops for n in range(int(a), int(b or a) + 1)})
        self.assertEqual(covered, list(range(1, 9)))

    def test_what_it_says_of_the_parts_sizes_is_true(self):
        cut = next(i for i, line in enumerate(self.lines) if line.startswith('# Part II'))
        code, tokens = set(), []
        for t in tokenize.generate_tokens(io.StringIO(self.source).readline):
            if t.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
                if tokens and any(x.type != tokenize.STRING for x in tokens):
                    code.add(tokens[0].start[0])
                tokens = []
            elif t.type not in (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT):
                tokens.append(t)
        statements = sum(1 for line in code if line <= cut)
        self.assertTrue(f'({cut} lines, {statements} statements)' in self.readme, f'({cut} lines, {statements} statements)')
        self.assertTrue(f'({len(self.lines) - cut} lines)' in self.readme, f'({len(self.lines) - cut} lines)')
        names = {}
        exec('from microgpt import *', names)
        self.assertTrue(f'`from microgpt import *` gives {len(names) - 1} names' in self.readme, f'`from microgpt import *` gives {len(names) - 1} names')

    def test_the_notebook_example_prints_what_it_says(self):
        tokenizer = microgpt.Tokenizer(read('names.txt').replace('\n', ''))
        config = microgpt.GPTConfig(tokenizer.vocab_size, n_embd=16, n_head=4, n_layer=1,
                                    block_size=16)
        sd = microgpt.init_state_dict(config)
        loss = microgpt.doc_loss(tokenizer.encode_doc('emma'), sd, config)
        shown = float(re.search(r'# loss = ([\d.]+), before any training', self.readme).group(1))
        self.assertAlmostEqual(loss.data, shown, delta=1e-12)   # (3.12 on: sum() rounds once)
        drawn = microgpt.sample(sd, tokenizer, config, random.Random(0), prompt='em')
        self.assertTrue(f'# sample = {drawn}' in self.readme, f'# sample = {drawn}')

    def test_the_pytorch_page_is_the_model_the_parity_test_checks(self):
        shown = re.search(r'## From microgpt to a real GPT.*?```python\n(.*?)```', self.readme,
                          re.S).group(1)
        tested = re.search(r'^(def torch_logits\(.*?)\n\n\n', read('tests/test_torch_parity.py'),
                           re.S | re.M).group(1)
        self.assertEqual(shown.strip(), tested.strip())

    def test_every_flag_is_in_the_flags_table_with_its_default(self):
        for name, default in microgpt.DEFAULTS.items():
            with self.subTest(flag=name):
                row = re.search(rf'^\| `--{name}[ `][^|]*\| ([^|]+) \|', self.readme, re.M)
                self.assertTrue(row, f'--{name} is not in the flags table')
                if default not in (None, '', False):
                    shown = f'{default:g}' if isinstance(default, float) else str(default)
                    self.assertEqual(row.group(1).split()[0], shown, f'--{name}')


if __name__ == '__main__':
    unittest.main()
