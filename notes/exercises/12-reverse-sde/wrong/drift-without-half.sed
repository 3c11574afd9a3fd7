# the slide's drift without the 1/2 (the erratum of Step 1): beta (x + score)
/^static void sde_step(/,/^}/ s|beta \* (0.5 \* x\[k\] - eps\[k\] \* score_scale)|beta * (x[k] - eps[k] * score_scale)|
