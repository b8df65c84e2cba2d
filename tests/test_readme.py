"""README.md is the user's first page: it must stay true to microgpt.py."""
import os
import re
import unittest

import microgpt
from tests import ROOT


def read(name):
    with open(os.path.join(ROOT, name), encoding='utf-8') as f:
        return f.read()


def headings(lines):
    """{title: line number} of microgpt.py's parts ('# Part I: ...') and sections
    ('# 1. Dataset', '# --- Command line ---')."""
    found = {}
    for number, line in enumerate(lines, start=1):
        m = (re.match(r'# (Part I+):', line) or re.match(r'# (\d\. [\w ]+)$', line)
             or re.match(r'# --- ([^:-]+?) *[:-]', line))
        if m:
            found[m.group(1)] = number
    return found


class TestReadme(unittest.TestCase):

    def setUp(self):
        self.readme = read('README.md')
        self.lines = read('microgpt.py').splitlines()

    def test_shows_the_two_commands(self):
        self.assertIn('\npython microgpt.py ', self.readme)
        self.assertIn('\npython -m unittest ', self.readme)

    def test_the_file_map_points_at_each_part_and_section(self):
        # A reader who opens microgpt.py at a row's first line finds that section's
        # heading there; rows are in file order and their ranges do not overlap.
        rows = [(int(a), int(b), title.strip('* ')) for a, b, title in
                re.findall(r'^\| (\d+)-(\d+) \| ([^|]+?) \|', self.readme, re.M)]
        found = headings(self.lines)
        where = ', '.join(f'{title} at {line}' for title, line in found.items())
        self.assertGreaterEqual(len(rows), 16, 'the map lists both parts and their sections')
        for start, end, title in rows:
            with self.subTest(title=title):
                self.assertIn(title, found, f'no heading {title!r} in microgpt.py ({where})')
                self.assertEqual(start, found[title], f'{title} starts at line {found[title]}')
                self.assertLessEqual(start, end)
        parts = [row for row in rows if row[2].startswith('Part')]
        self.assertEqual([title for *_, title in parts], ['Part I', 'Part II'])
        for (_, end, _), (start, _, _) in zip(parts, parts[1:]):
            self.assertLess(end, start)
        self.assertEqual(parts[-1][1], len(self.lines), 'Part II runs to the end of the file')
        sections = [row for row in rows if not row[2].startswith('Part')]
        self.assertEqual(sections, sorted(sections))
        for (_, end, title), (start, _, _) in zip(sections, sections[1:]):
            self.assertLess(end, start, f'{title} overlaps the next section')

    def test_the_lines_it_quotes_are_where_it_says(self):
        # "microgpt.py line 217: `head_dim = ...`": that line holds that code
        quoted = re.findall(r'line (\d+): `([^`]+)`', self.readme)
        self.assertGreaterEqual(len(quoted), 5)
        for number, code in quoted:
            self.assertIn(code, self.lines[int(number) - 1], f'line {number} is not `{code}`')

    def test_the_path_through_part_one_stops_at_its_sections(self):
        # "lines 54-163" in the path: line 54 is a section's heading, and the range ends
        # where the next section's separator starts
        found = headings(self.lines)
        starts = set(found.values())
        stops = re.findall(r'^\| [^|]+ \| lines (\d+)-(\d+):', self.readme, re.M)
        self.assertGreaterEqual(len(stops), 7)
        for start, end in stops:
            with self.subTest(lines=f'{start}-{end}'):
                self.assertIn(int(start), starts)
                after = self.lines[int(end):int(end) + 3]
                self.assertTrue(any(line.startswith('# ---') or line.startswith('# Part II')
                                    for line in after), after)
        example = re.search(r'the example of lines (\d+)-(\d+)', self.readme)
        first, last = (self.lines[int(example.group(i)) - 1] for i in (1, 2))
        self.assertIn('By hand, c = a*b + a^2', first)
        self.assertIn('b.grad = 2', last)

    def test_the_pytorch_page_is_the_model_the_parity_test_checks(self):
        shown = re.search(r'## From microgpt to a real GPT.*?```python\n(.*?)```', self.readme,
                          re.S).group(1)
        source = read('tests/test_torch_parity.py')
        tested = re.search(r'^(def torch_logits\(.*?)\n\n\n', source, re.S | re.M).group(1)
        self.assertEqual(shown.strip(), tested.strip())

    def test_every_flag_is_in_the_flags_table_with_its_default(self):
        flags = re.findall(r"^    flag\('(--\w+)'", read('microgpt.py'), re.M)
        self.assertGreater(len(flags), 15)
        self.assertEqual(set(flags), {'--' + name for name in vars(microgpt.parse_args([]))} - {'--given'})
        for flag in flags:
            self.assertTrue(re.search(rf'\| `{flag}[ `]', self.readme), f'{flag} is not in the table')
        defaults = dict(vars(microgpt.parse_args([])), **microgpt.DEFAULTS)   # (shape: not None)
        for name, default in defaults.items():
            if name not in ('input', 'prompt', 'save', 'load', 'show_attention', 'bench', 'given',
                            'show_backward', 'gradcheck', 'show_gradients', 'show_embeddings'):
                row = re.search(rf'^\| `--{name}` \| ([^|]+) \|', self.readme, re.M)
                self.assertTrue(row, f'--{name} has no row')
                self.assertEqual(row.group(1).split()[0], f'{default:g}' if isinstance(default, float)
                                 else str(default), f'--{name}: README and --help differ')


if __name__ == '__main__':
    unittest.main()
