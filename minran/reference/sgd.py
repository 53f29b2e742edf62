"""One step of stochastic gradient descent, parameter by parameter, as PyTorch defines it.

The fast version, minran/optim/sgd.py, does the same update in place (and on the GPU as
sgd.cu's kernel); tests/test_reference.py holds the two equal over several steps.
"""


def sgd_step(params, grads, buffers, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
    """New parameters and momentum buffers (lists of arrays; buffers start as None):

        g = grad + weight_decay * p
        buf = g                      (first step)
        buf = momentum * buf + g     (later steps)
        g = g + momentum * buf       (Nesterov)   or   g = buf   (plain momentum)
        p = p - lr * g
    """
    new_params, new_buffers = [], []
    for p, grad, buf in zip(params, grads, buffers):
        g = grad + weight_decay * p
        if momentum:
            buf = g if buf is None else momentum * buf + g
            g = g + momentum * buf if nesterov else buf
        new_params.append(p - lr * g)
        new_buffers.append(buf)
    return new_params, new_buffers
