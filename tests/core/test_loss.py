import torch

from multibyte.loss import cross_entropy_sum, next_byte_loss, next_byte_nats
from multibyte.model import Megabyte, MegabyteConfig


def test_chunked_loss_equals_the_plain_loss_and_its_gradients():
    torch.manual_seed(0)
    config = MegabyteConfig(
        patch_size=4, max_seq_len=64, global_dim=32, global_heads=2, local_dim=16, local_heads=2
    )
    model = Megabyte(config).double()
    x = torch.randint(0, 256, (3, 61))
    reference = torch.nn.functional.cross_entropy(
        model(x).reshape(-1, 256), x.reshape(-1), reduction="sum"
    )
    reference.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters()}
    for chunk in (7, 16, None):
        model.zero_grad()
        loss = cross_entropy_sum(model.hidden(x), model.head, x, chunk_size=chunk)
        assert abs(loss.item() - reference.item()) < 1e-6 * reference.item()
        loss.backward()
        for name, parameter in model.named_parameters():
            assert torch.allclose(parameter.grad, expected[name], atol=1e-10), (chunk, name)


def test_next_byte_loss_is_the_mean_cross_entropy_of_the_logits():
    torch.manual_seed(0)
    config = MegabyteConfig(
        patch_size=4, max_seq_len=32, global_dim=32, global_heads=2, local_dim=16, local_heads=2
    )
    model = Megabyte(config).double()
    x = torch.randint(0, 256, (2, 30))
    expected = torch.nn.functional.cross_entropy(model(x).reshape(-1, 256), x.reshape(-1))
    for chunk in (7, None):
        assert torch.allclose(next_byte_loss(model, x, chunk), expected, rtol=1e-12)
        total = next_byte_nats(model, x, chunk)
        assert torch.allclose(total, expected * x.numel(), rtol=1e-12)
