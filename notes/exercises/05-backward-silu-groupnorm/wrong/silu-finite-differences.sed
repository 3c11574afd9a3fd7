# the issue's case 3: SiLU's derivative by central differences, h = 1e-5 (right in -DDOUBLE; in the float build that trains, off by up to 0.1)
/^static void silu_backward(/,/^}/ { /real s = sigmoid(inp\[i\]);/c\
        real h = (real)1e-5, a = inp[i] + h, b = inp[i] - h;
s|dinp\[i\] += dout\[i\] \* s \* (1 + inp\[i\] \* (1 - s));|dinp[i] += dout[i] * (a * sigmoid(a) - b * sigmoid(b)) / (2 * h);|
}
