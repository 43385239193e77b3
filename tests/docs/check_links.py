#!/usr/bin/env python3
"""Checks the documentation's links, run by tests/run.sh as one test.

- every relative link of README.md and docs/*.md names a file of the
  repository, and its #anchor a heading (GitHub's slug) or an <a id> of it;
- no link leaves the repository through a relative path (../ above the root)
  or an absolute file path;
- README.md is under README_LINES_MAX lines (it is the door; the rest is in
  docs/);
- a problem's type URL (HTTP_PROBLEM_TYPE_PREFIX in libs/http/http.h) names
  docs/errors.md, and every code of services/ingest/problems.c has its anchor
  there.

--self-test first checks that broken copies are refused, so a checker that
accepts anything cannot pass. Run from the repository root. Standard library
only (it runs before any virtualenv exists).
"""
import glob
import os
import re
import shutil
import sys
import tempfile

README_LINES_MAX = 300
LINK = re.compile(r'(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)')
IMAGE = re.compile(r'!\[[^\]]*\]\(([^)\s]+)\)')
HEADING = re.compile(r'^(#{1,6})\s+(.*?)\s*#*\s*$')
HTML_ID = re.compile(r'<a\s+(?:id|name)="([^"]+)"')
PREFIX = re.compile(r'#define HTTP_PROBLEM_TYPE_PREFIX\s+"([^"]+)"')
CATALOGUE_CODE = re.compile(r'^\s*\{"([a-z_]+)",\s*\d{3},', re.M)


def slug(text):
    """GitHub's heading anchor: lower case, markup and punctuation dropped,
    spaces to hyphens."""
    text = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', text)  # a link keeps its text
    text = re.sub(r'<[^>]+>', '', text).lower()
    text = re.sub(r'[^\w\- ]', '', text)  # \w keeps letters of any script, _
    return text.replace(' ', '-')


def strip_code(text):
    """The text without fenced blocks and inline code (links there are
    examples, not links)."""
    out, fenced = [], False
    for line in text.split('\n'):
        if line.lstrip().startswith('```'):
            fenced = not fenced
            out.append('')
            continue
        out.append('' if fenced else re.sub(r'`[^`]*`', '``', line))
    return '\n'.join(out)


def anchors(path, cache):
    if path not in cache:
        found, seen = set(), {}
        text = strip_code(open(path, encoding='utf-8').read())
        for line in text.split('\n'):
            m = HEADING.match(line)
            if m:
                # headings are read with their inline code back in
                s = slug(m.group(2).replace('``', ''))
                n = seen.get(s, 0)
                seen[s] = n + 1
                found.add(s if n == 0 else '%s-%d' % (s, n))
        raw = open(path, encoding='utf-8').read()
        for line in raw.split('\n'):
            m = HEADING.match(line)
            if m:
                found.add(slug(m.group(2)))
        found.update(HTML_ID.findall(raw))
        cache[path] = found
    return cache[path]


def check_links(root, doc, cache):
    errors = []
    text = strip_code(open(os.path.join(root, doc), encoding='utf-8').read())
    for lineno, line in enumerate(text.split('\n'), 1):
        for target in LINK.findall(line) + IMAGE.findall(line):
            if re.match(r'^[a-z][a-z0-9+.-]*:', target):  # http:, mailto: ...
                continue
            where = '%s:%d: %s' % (doc, lineno, target)
            path, _, frag = target.partition('#')
            if path.startswith('/'):
                errors.append(where + ': an absolute path is not in the repository')
                continue
            full = os.path.normpath(os.path.join(root, os.path.dirname(doc), path)) if path \
                else os.path.join(root, doc)
            if os.path.relpath(full, root).startswith('..'):
                errors.append(where + ': outside the repository')
                continue
            if not os.path.exists(full):
                errors.append(where + ': no such file')
                continue
            if frag and full.endswith('.md') and frag not in anchors(full, cache):
                errors.append(where + ': no heading or anchor "%s" there' % frag)
    return errors


def check_problem_types(root, cache):
    http_h = open(os.path.join(root, 'libs/http/http.h'), encoding='utf-8').read()
    m = PREFIX.search(http_h)
    if not m:
        return ['libs/http/http.h: HTTP_PROBLEM_TYPE_PREFIX not found']
    m2 = re.match(r'^https://[^/]+/(docs/[^#]+)#$', m.group(1))
    if not m2 or not os.path.isfile(os.path.join(root, m2.group(1))):
        return ['problem type prefix %s names no page of docs/' % m.group(1)]
    page = os.path.join(root, m2.group(1))
    problems_c = open(os.path.join(root, 'services/ingest/problems.c'), encoding='utf-8').read()
    codes = CATALOGUE_CODE.findall(problems_c)
    if not codes:
        return ['services/ingest/problems.c: no codes found']
    have = anchors(page, cache)
    return ['%s: no anchor for the problem code %s (add <a id="%s"></a> to its row)'
            % (m2.group(1), c, c) for c in codes if c not in have]


def check(root):
    cache = {}
    errors = []
    docs = ['README.md'] + sorted(os.path.relpath(p, root)
                                  for p in glob.glob(os.path.join(root, 'docs', '*.md')))
    for doc in docs:
        errors += check_links(root, doc, cache)
    lines = open(os.path.join(root, 'README.md'), encoding='utf-8').read().count('\n')
    if lines >= README_LINES_MAX:
        errors.append('README.md has %d lines (under %d: move the detail to docs/)'
                      % (lines, README_LINES_MAX))
    errors += check_problem_types(root, cache)
    return errors, len(docs)


def self_test(root):
    """Each breakage of a copy must be reported."""
    breakages = [
        ('README.md', '](docs/errors.md)', '](docs/no-such-page.md)'),
        ('README.md', '](docs/errors.md)', '](docs/errors.md#no-such-anchor)'),
        ('README.md', '](docs/errors.md)', '](../outside.md)'),
        ('docs/errors.md', '<a id="not_found"></a>', ''),
        ('README.md', '\n## ', '\n' + 'x\n' * README_LINES_MAX + '## '),
    ]
    tmp = tempfile.mkdtemp()
    try:
        for n, (path, old, new) in enumerate(breakages):
            copy = os.path.join(tmp, str(n))
            for sub in ('docs', 'libs/http', 'services/ingest'):
                os.makedirs(os.path.join(copy, sub))
            for f in ['README.md', 'libs/http/http.h', 'services/ingest/problems.c'] + \
                    [os.path.relpath(p, root) for p in glob.glob(os.path.join(root, 'docs', '*'))]:
                shutil.copy(os.path.join(root, f), os.path.join(copy, f))
            for keep in ('deploy', 'tests', 'services', 'libs', 'proto', 'Makefile', 'bench'):
                src = os.path.join(root, keep)
                dst = os.path.join(copy, keep)
                if not os.path.exists(dst):
                    os.symlink(src, dst)
            target = os.path.join(copy, path)
            text = open(target, encoding='utf-8').read()
            if old not in text:
                return 'self-test %d: "%s" not in %s' % (n, old, path)
            open(target, 'w', encoding='utf-8').write(text.replace(old, new, 1))
            if not check(copy)[0]:
                return 'self-test %d: breaking %s (%s) was not noticed' % (n, path, old)
    finally:
        shutil.rmtree(tmp)
    return None


def main():
    root = os.getcwd()
    if '--self-test' in sys.argv:
        failure = self_test(root)
        if failure:
            print('docs links: ' + failure)
            return 1
    errors, pages = check(root)
    for e in errors:
        print(e)
    if errors:
        return 1
    print('docs links: %d pages, every relative link resolves, README under %d lines'
          % (pages, README_LINES_MAX))
    return 0


if __name__ == '__main__':
    sys.exit(main())
