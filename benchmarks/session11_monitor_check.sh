python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:src || exit
export PYTHONUNBUFFERED=1
timeout 40 python3 -m rigbench monitor --rate 100 --seconds 8 --json > $OUT/monitor.json 2> $OUT/monitor.err; echo "monitor exit $?"
timeout 30 python3 -m rigbench monitor --rate 100 --seconds 5 > $OUT/table.txt 2>&1; echo "table exit $?"
timeout 60 python3 -m rigbench monitor --rate 100 --record --db /tmp/m.db -- python3 -c "import torch,time; a=torch.randn(8192,8192,device='cuda',dtype=torch.bfloat16); t=time.time()
while time.time()-t<6: a@a
torch.cuda.synchronize()" > $OUT/job.txt 2>&1; echo "job exit $?"
tail -c 1500 $OUT/monitor.err; head -c 3000 $OUT/monitor.json; echo; tail -c 2000 $OUT/table.txt; tail -c 2500 $OUT/job.txt
