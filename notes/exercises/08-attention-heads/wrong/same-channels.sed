# both heads read the first C/2 channels (the head's offset forgotten in q, k and v, forward and backward)
/^static void attention_\(forward\|backward\)(/,/^}/ s|const real \*q = a->q + off, \*k = a->k + off, \*v = a->v + off;|const real *q = a->q + (size_t)b * C * N, *k = a->k + (size_t)b * C * N, *v = a->v + (size_t)b * C * N;|
