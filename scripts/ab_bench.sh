for rep in 1 2 3; do
 for b in compact-old compact; do
  for s in 60m 130m; do
   echo -n "$b rep$rep "; bin/$b bench --config configs/llama-$s.yaml --device cuda --set train.grad_accum=1 --set compact.rank=0.25 --modes full,compact --steps 10 --warmup 3 | tr '\n' ' '; echo
  done
 done
done
