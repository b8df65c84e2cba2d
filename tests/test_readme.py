"""README.md is the user's first page: it must stay true to microgpt.py."""
import os
import re
import unittest

import microgpt
from tests import ROOT


def read(name):
    with open(os.path.join(ROOT, name), encoding='utf-8') as f:
        return f.read()


class TestReadme(unittest.TestCase):

    def setUp(self):
        self.readme = read('README.md')
        self.lines = read('microgpt.py').splitlines()

    def test_shows_the_two_commands(self):
        self.assertIn('\npython microgpt.py ', self.readme)
        self.assertIn('\npython -m unittest ', self.readme)

    def test_the_file_map_matches_the_sections_of_microgpt_py(self):
        rows = re.findall(r'^\| (\d+)-(\d+) \| ([^|]+?) \|', self.readme, re.M)
        self.assertEqual([title for _, _, title in rows],
                         ['header', '1. Dataset', '2. Tokenizer', '3. Autograd', '4. Parameters', '5. Model',
                          '6. Training', '7. Sampling', '8. Command line', 'Appendix: tools', 'entry point'])
        previous_end = 0
        for start, end, title in rows:
            start, end = int(start), int(end)
            first = self.lines[start - 1]
            if title[0].isdigit():
                self.assertEqual(first, f'# {title}', f'line {start} should open section {title}')
            elif title == 'Appendix: tools':
                self.assertTrue(first.startswith('# Appendix'), first)
            elif title == 'entry point':
                self.assertTrue(first.startswith("if __name__ == '__main__'"), first)
            between = self.lines[previous_end:start - 1]     # only blank lines and rules between sections
            self.assertTrue(all(not line.strip() or set(line) <= set('#-= ') for line in between),
                            f'lines {previous_end + 1}-{start - 1} are not part of any section')
            self.assertTrue(self.lines[end - 1].strip(), f'section {title} should end on line {end}, not a blank')
            previous_end = end
        self.assertEqual(previous_end, len(self.lines))
        self.assertIn(f'`microgpt.py` ({len(self.lines)} lines)', self.readme)

    def test_every_flag_is_in_the_flags_table(self):
        flags = re.findall(r"^    flag\('(--\w+)'", read('microgpt.py'), re.M)
        self.assertGreater(len(flags), 15)
        for flag in flags:
            self.assertRegex(self.readme, rf'\| `{flag}[ `]', f'{flag} is missing from the flags table')
        self.assertEqual(set(flags), {'--' + name for name in vars(microgpt.parse_args([]))})


if __name__ == '__main__':
    unittest.main()
