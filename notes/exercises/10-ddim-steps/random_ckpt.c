// random_ckpt OUT T: writes a checkpoint of a small network (8x8 images, widths 8/16) with random
// weights and the cosine schedule with T steps, so that the measurement of part 2 can be tried in
// seconds (selftest.sh does). Its "samples" are not pictures of anything, but DDIM's convergence in
// S is the same phenomenon. Build (float, like ./diffusion):
//     cc -O2 -DSTUDENT_C='"path/to/diffusion.c"' random_ckpt.c -lm -o random_ckpt
#define DIFFUSION_NO_MAIN
#include STUDENT_C

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: random_ckpt OUT T\n"); return 2; }
    Config small = {1, 8, 8, 8, 16, 8, 16, 4, 10, 1};
    Rng rng = {5};
    Model *m = model_create(&small, 1);
    params_init(m, &rng, 1);  // test = 1: every tensor random, none zero
    memcpy(m->ema, m->params, m->n_params * sizeof(real));  // sample uses the EMA weights
    checkpoint_save(argv[1], m, SCHEDULE_COSINE, atoi(argv[2]), 0, &rng, 1, 1);
    model_free(m);
    printf("wrote %s: random weights, 8x8 images, cosine schedule, T = %s\n", argv[1], argv[2]);
    return 0;
}
