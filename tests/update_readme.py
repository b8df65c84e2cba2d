"""README.md's line numbers, kept true to microgpt.py: an edit of the file costs one command.

    python tests/update_readme.py           # rewrite README.md's line numbers from microgpt.py
    python tests/update_readme.py --check   # only say whether any is stale (the tests run it)

It rewrites four kinds of reference, each found by what it points at, never by its number:
  | 13-29 | 1. Dataset |             a row of the file map: the section of that title
  sections 1-2 (lines 13-51)         sections of Part I, first to last (or: section 3)
  line 247: `head_dim = ...`         the one line of microgpt.py that holds that code
                                     ('Line 247:' too, and the code on the next line)
  lines 59-63 (the worked example)   the lines from 'By hand, c = a*b' to 'b.grad = 2'
Standard library only.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sections(lines):
    """{title: (first line, last line)}: 'Part I', 'Part II', Part I's '1. Dataset'... and
    Part II's 'Settings'...; a section ends at the last line before the next one's rule."""
    starts = []
    for number, line in enumerate(lines, start=1):
        m = (re.match(r'# (Part I+):', line) or re.match(r'# (\d\. [\w ]+?)(?:: .*)?$', line)
             or re.match(r'# --- ([^:-]+?) *[:-]', line))
        if m:
            starts.append((m.group(1), number))
    found = {}
    for i, (title, first) in enumerate(starts):
        if title == 'Part I':
            last = next(n for t, n in starts if t == 'Part II') - 1
        elif title == 'Part II':
            last = len(lines)
        else:
            later = [n for t, n in starts[i + 1:] if t != 'Part II'] + [
                n for t, n in starts if t == 'Part II' and n > first] + [len(lines) + 1]
            last = min(later) - 1
            while lines[last - 1].startswith('# ---') or lines[last - 1].startswith('# ===') \
                    or not lines[last - 1].strip():
                last -= 1
        found[title] = (first, last)
    return found


def updated(readme, lines):
    """README's text with every line reference rewritten, and what could not be placed."""
    found, missing = sections(lines), []

    def one_line(code):
        places = [n for n, line in enumerate(lines, start=1) if code in line]
        if len(places) != 1:
            missing.append(f'`{code}` is on {len(places)} lines of microgpt.py, not one')
            return None
        return places[0]

    def file_map(m):
        title = m.group(3).strip('* ')
        if title not in found:
            missing.append(f'no section {title!r} in microgpt.py')
            return m.group(0)
        return f'| {found[title][0]}-{found[title][1]} | {m.group(3)} |'

    def quoted(m):
        number = one_line(m.group(4))
        return f'{m.group(1)} {number or m.group(2)}:{m.group(3)}`{m.group(4)}`'

    def part_one(m):
        a, b = m.group(1), m.group(2) or m.group(1)
        first, last = (next((v for k, v in found.items() if k.startswith(f'{n}. ')), None)
                       for n in (a, b))
        if not first or not last:
            missing.append(f'no section {a} or {b}')
            return m.group(0)
        return (f'sections {a}-{b}' if a != b else f'section {a}') + \
            f' (lines {first[0]}-{last[1]})'

    def example(m):
        first, last = one_line('By hand, c = a*b'), one_line('b.grad = 2')
        return f'lines {first}-{last} (the worked example)'

    readme = re.sub(r'^\| (\d+)-(\d+) \| ([^|]+?) \|', file_map, readme, flags=re.M)
    readme = re.sub(r'([Ll]ine) (\d+):([ \n])`([^`]+)`', quoted, readme)
    readme = re.sub(r'sections? (\d)(?:-(\d))? \(lines \d+-\d+\)', part_one, readme)
    readme = re.sub(r'lines \d+-\d+ \(the worked example\)', example, readme)
    return readme, missing


def main(argv):
    with open(os.path.join(ROOT, 'README.md'), encoding='utf-8') as f:
        readme = f.read()
    with open(os.path.join(ROOT, 'microgpt.py'), encoding='utf-8') as f:
        lines = f.read().splitlines()
    new, missing = updated(readme, lines)
    for problem in missing:
        print(f'README.md: {problem}', file=sys.stderr)
    if argv == ['--check']:
        stale = new != readme
        if stale:
            print('README.md\'s line numbers are stale: run python tests/update_readme.py',
                  file=sys.stderr)
        return 1 if stale or missing else 0
    if new != readme:
        with open(os.path.join(ROOT, 'README.md'), 'w', encoding='utf-8') as f:
            f.write(new)
        print('README.md: line numbers rewritten')
    return 1 if missing else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
