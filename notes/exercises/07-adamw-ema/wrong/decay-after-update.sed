# weight decay on the updated weight, outside the step (p -= lr wd p after the Adam step): not bit for bit
/^static double adamw_step(/,/^}/ { s|p -= h->lr \* ((mi / bc1) / (sqrt(vi / bc2) + h->eps) + h->weight_decay \* p);|p -= h->lr * ((mi / bc1) / (sqrt(vi / bc2) + h->eps));\
        p -= h->lr * h->weight_decay * p;|; }
