# t ~ Unif{0..T-1} instead of Unif{1..T}: t = 0 (x_t = x_0, nothing to denoise) in, t = T out
/^static void draw_training_batch(/,/^}/ s/t\[b\] = 1 + rng_int(rng, s->T);/t[b] = rng_int(rng, s->T);/
