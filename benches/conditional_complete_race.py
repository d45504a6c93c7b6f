#!/usr/bin/env python3
"""Probes how an S3 server checks conditions on appends by copy (boto3).

Two threads each create an upload, copy part 1 (with a range and x-amz-copy-source-if-match) from
the same version of one object, upload part 2, meet, then Complete with If-Match: an atomic
server lets one of them through. Then one copy with a wrong x-amz-copy-source-if-match.

Usage: AWS_ACCESS_KEY_ID=.. AWS_SECRET_ACCESS_KEY=.. python3 benches/conditional_complete_race.py URL
Measured 2026-11-30: SeaweedFS 4.48 both succeeded 11 of 30, honours the copy condition;
moto 5.2.1 both succeeded 30 of 30, ignores the copy condition."""
from botocore.config import Config
ep=sys.argv[1]
s3=boto3.client("s3",endpoint_url=ep,aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],region_name="us-east-1",config=Config(s3={"addressing_style":"path"}))
b="racecheck"
try: s3.create_bucket(Bucket=b)
except Exception as e: pass
k="t.log"
s3.put_object(Bucket=b,Key=k,Body=b"x"*(5*1024*1024+10))
both=0; copy412=0
for trial in range(30):
    h=s3.head_object(Bucket=b,Key=k); etag=h["ETag"]; size=h["ContentLength"]
    res={}
    def w(name):
        try:
            u=s3.create_multipart_upload(Bucket=b,Key=k)["UploadId"]
            p1=s3.upload_part_copy(Bucket=b,Key=k,UploadId=u,PartNumber=1,CopySource={"Bucket":b,"Key":k},CopySourceRange=f"bytes=0-{size-1}",CopySourceIfMatch=etag)["CopyPartResult"]["ETag"]
            p2=s3.upload_part(Bucket=b,Key=k,UploadId=u,PartNumber=2,Body=name.encode()*100)["ETag"]
            bar.wait()
            s3.complete_multipart_upload(Bucket=b,Key=k,UploadId=u,MultipartUpload={"Parts":[{"PartNumber":1,"ETag":p1},{"PartNumber":2,"ETag":p2}]},IfMatch=etag)
            res[name]="ok"
        except Exception as e:
            res[name]=str(e)[:80]
            try: bar.wait(timeout=1)
            except Exception: pass
    bar=threading.Barrier(2)
    ts=[threading.Thread(target=w,args=(n,)) for n in "AB"]
    [t.start() for t in ts]; [t.join() for t in ts]
    if all(v=="ok" for v in res.values()): both+=1
    if trial<3: print(res)
print("both succeeded:",both,"of 30")
# copy-source-if-match honoured?
h=s3.head_object(Bucket=b,Key=k)
u=s3.create_multipart_upload(Bucket=b,Key=k)["UploadId"]
try:
    s3.upload_part_copy(Bucket=b,Key=k,UploadId=u,PartNumber=1,CopySource={"Bucket":b,"Key":k},CopySourceRange="bytes=0-9",CopySourceIfMatch='"0123456789abcdef0123456789abcdef"')
    print("copy-source-if-match IGNORED")
except Exception as e: print("copy-source-if-match honoured:",str(e)[:80])
