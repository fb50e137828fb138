# Maps perf samples of a stripped Go binary (nats-server) to Go function names
# through its .gopclntab (Go 1.18+ layout). Usage:
#   perf script -i nats.data -F ip,dso -G | python3 bench/tools/gosym.py
import struct, sys, subprocess, collections, bisect
path='/usr/sbin/nats-server'
data=open(path,'rb').read()
# find section .gopclntab via readelf
out=subprocess.run(['readelf','-SW',path],capture_output=True,text=True).stdout
for l in out.splitlines():
    if '.gopclntab' in l:
        parts=l.split(']')[1].split()
        addr=int(parts[2],16); off=int(parts[3],16); size=int(parts[4],16)
p=data[off:off+size]
magic=struct.unpack_from('<I',p,0)[0]
ptr=p[7]
assert ptr==8, ptr
nfunc,nfiles,textStart,funcnameOff,cuOff,filetabOff,pctabOff,pclnOff=struct.unpack_from('<8Q',p,8)
ft=pclnOff
entries=[];names=[]
for i in range(nfunc):
    entryoff,funcoff=struct.unpack_from('<II',p,ft+8*i)
    fo=pclnOff+funcoff
    e2,nameoff=struct.unpack_from('<Ii',p,fo)
    s=funcnameOff+nameoff; end=p.index(b'\0',s)
    entries.append(textStart+entryoff); names.append(p[s:end].decode())
cnt=collections.Counter(); tot=0; kern=0
for line in sys.stdin:
    f=line.split()
    if not f: continue
    tot+=1
    if 'nats-server' not in line:
        cnt[f[-1]]+=1; continue
    ip=int(f[0],16)
    i=bisect.bisect_right(entries,ip)-1
    cnt[names[i] if i>=0 else '?']+=1
print('magic %x total %d'%(magic,tot))
crypto=sum(v for k,v in cnt.items() if k.startswith('crypto/'))
print('crypto/* share %.1f%%'%(100*crypto/tot))
for k,v in cnt.most_common(45): print('%5.1f%% %s'%(100*v/tot,k))
grp=collections.Counter()
for k,v in cnt.items():
    if k.startswith('('): g='kernel/vdso'
    elif k.startswith('crypto/'): g='crypto'
    elif k.startswith('runtime'): g='go runtime'
    elif 'nats-server' in k: g='nats-server code'
    else: g='other go libs ('+k.split('.')[0]+')'
    grp[g]+=v
for k,v in grp.most_common(12): print('GROUP %5.1f%% %s'%(100*v/tot,k))
