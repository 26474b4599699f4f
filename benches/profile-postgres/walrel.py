import re, sys, collections
label = sys.argv[1]
rel = {}
for line in open(f"relmap-{label}.tsv"):
    p = line.rstrip("\n").split("\t")
    if len(p) >= 3 and p[0].isdigit():
        rel[p[0]] = (p[1], p[3] if len(p) > 3 else "")
n = int(sys.argv[2])
cnt = collections.Counter(); byt = collections.Counter()
pat = re.compile(r"rmgr: (\S+)\s+len \(rec/tot\):\s*(\d+)/\s*(\d+),.*desc: (\S+).*?blkref #0: rel \d+/\d+/(\d+)")
other = collections.Counter(); otherb = collections.Counter()
for line in open(f"waldump-{label}.txt"):
    m = pat.search(line)
    if not m:
        mm = re.search(r"rmgr: (\S+)\s+len \(rec/tot\):\s*(\d+)/\s*(\d+),.*desc: (\S+)", line)
        if mm:
            other[(mm.group(1), mm.group(4))] += 1; otherb[(mm.group(1), mm.group(4))] += int(mm.group(3))
        continue
    rm, tot, desc, node = m.group(1), int(m.group(3)), m.group(4), m.group(5)
    name, parent = rel.get(node, (node, ""))
    name = re.sub(r"_\d+(_|$)", r"_N\1", name) if parent or re.search(r"_\d+_", name) else name
    cnt[(rm, desc, name)] += 1; byt[(rm, desc, name)] += tot
print(f"{'rmgr':8} {'record':14} {'relation':42} {'count':>8} {'/exec':>7} {'bytes/exec':>10}")
for k, c in sorted(cnt.items(), key=lambda kv: -byt[kv[0]]):
    print(f"{k[0]:8} {k[1]:14} {k[2]:42} {c:8} {c/n:7.3f} {byt[k]/n:10.1f}")
for k, c in other.most_common():
    print(f"{k[0]:8} {k[1]:14} {'(no blkref)':42} {c:8} {c/n:7.3f} {otherb[k]/n:10.1f}")
