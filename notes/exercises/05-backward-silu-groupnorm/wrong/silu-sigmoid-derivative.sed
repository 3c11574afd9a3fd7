# uses the sigmoid's derivative s (1 - s) for SiLU's
/^static void silu_backward(/,/^}/ s/dout\[i\] \* s \* (1 + inp\[i\] \* (1 - s))/dout[i] * s * (1 - s)/
