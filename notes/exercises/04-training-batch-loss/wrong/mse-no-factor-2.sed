# the gradient of (pred - eps)^2 without its factor 2 (Adam hides the scale: the loss still falls)
/^static void mse_backward(/,/^}/ s/(real)(2\.0 \* (pred\[i\] - eps\[i\]) \/ (double)n)/(real)((pred[i] - eps[i]) \/ (double)n)/
