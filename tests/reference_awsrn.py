"""Test oracles: the official AWSRN (``awsrn.py`` / ``awsrnd.py``) and super-image ``AwsrnModel``
structures, written independently of ``benchmark.models`` with torch's own ``weight_norm``, so that
loading their state dicts into our models can be checked forward-for-forward. Differences from the
originals: no ``.cuda()`` in forward, no custom ``load_state_dict``."""
import torch
from torch import nn

MEAN = torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1)


def wn(m):
    return torch.nn.utils.weight_norm(m)


class Scale(nn.Module):
    def __init__(self, v):
        super().__init__()
        self.scale = nn.Parameter(torch.FloatTensor([v]))

    def forward(self, x):
        return x * self.scale


class AWRU(nn.Module):
    def __init__(self, nf, bf):
        super().__init__()
        self.res_scale, self.x_scale = Scale(1), Scale(1)
        self.body = nn.Sequential(wn(nn.Conv2d(nf, bf, 3, padding=1)), nn.ReLU(True), wn(nn.Conv2d(bf, nf, 3, padding=1)))

    def forward(self, x):
        return self.res_scale(self.body(x)) + self.x_scale(x)


class AWMS(nn.Module):
    def __init__(self, s, nf):
        super().__init__()
        for k in (3, 5, 7, 9):
            setattr(self, f"tail_k{k}", wn(nn.Conv2d(nf, 3 * s * s, k, padding=k // 2)))
            setattr(self, f"scale_k{k}", Scale(0.25))
        self.ps = nn.PixelShuffle(s)

    def forward(self, x):
        return sum(self.ps(getattr(self, f"scale_k{k}")(getattr(self, f"tail_k{k}")(x))) for k in (3, 5, 7, 9))


class OfficialLFB(nn.Module):
    """awsrn.py (4 units) / awsrnd.py (8 units): attributes b0..b{n-1}."""

    def __init__(self, nf, bf, n):
        super().__init__()
        self.n = n
        for j in range(n):
            setattr(self, f"b{j}", AWRU(nf, bf))
        self.reduction = wn(nn.Conv2d(nf * n, nf, 3, padding=1))
        self.res_scale, self.x_scale = Scale(1), Scale(1)

    def forward(self, x):
        outs, h = [], x
        for j in range(self.n):
            h = getattr(self, f"b{j}")(h)
            outs.append(h)
        return self.res_scale(self.reduction(torch.cat(outs, 1))) + self.x_scale(x)


class SuperImageLFB(OfficialLFB):
    """awsrnv2 / super-image: a ModuleList ``lfl``."""

    def __init__(self, nf, bf, n):
        nn.Module.__init__(self)
        self.n = n
        self.lfl = nn.ModuleList([AWRU(nf, bf) for _ in range(n)])
        self.reduction = wn(nn.Conv2d(nf * n, nf, 3, padding=1))
        self.res_scale, self.x_scale = Scale(1), Scale(1)

    def forward(self, x):
        outs, h = [], x
        for u in self.lfl:
            h = u(h)
            outs.append(h)
        return self.res_scale(self.reduction(torch.cat(outs, 1))) + self.x_scale(x)


class CA(nn.Module):
    def __init__(self, c, r):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(c, c // r, 1, bias=False)
        self.relu1 = nn.PReLU(c // r)
        self.fc2 = nn.Conv2d(c // r, c, 1, bias=False)

    def forward(self, x):
        return torch.sigmoid(self.fc2(self.relu1(self.fc1(self.avg_pool(x)))))


class SA(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 1, 7, padding=3, bias=False)

    def forward(self, x):
        return torch.sigmoid(self.conv1(torch.max(x, dim=1, keepdim=True)[0]))


class Bam(nn.Module):
    def __init__(self, c, r=8):
        super().__init__()
        self.ca, self.sa = CA(c, r), SA()

    def forward(self, x):
        return self.ca(x).mul(self.sa(x)) * x


class Net(nn.Module):
    """flavour 'official': inputs on [0, 255], mean shift. flavour 'super-image': inputs on [0, 1];
    mean shift (x - mean*255)/127.5 unless bam."""

    def __init__(self, scale, n_lfb, n_awru, nf, bf=128, flavour="official", bam=False):
        super().__init__()
        lfb = OfficialLFB if flavour == "official" else SuperImageLFB
        self.bam = bam
        self.head = nn.Sequential(wn(nn.Conv2d(3, nf, 3, padding=1)))
        self.body = nn.Sequential(*[lfb(nf, bf, n_awru) for _ in range(n_lfb)])
        self.tail = AWMS(scale, nf)
        self.skip = nn.Sequential(wn(nn.Conv2d(3, 3 * scale * scale, 3, padding=1)), nn.PixelShuffle(scale))
        if bam:
            self.attention = Bam(bf // 4)

    def forward(self, x):
        if not self.bam:
            x = (x - MEAN * 255) / 127.5
        s = self.skip(x)
        x = self.body(self.head(x))
        if self.bam:
            x = self.attention(x)
        x = self.tail(x) + s
        if not self.bam:
            x = x * 127.5 + MEAN * 255
        return x


def randomize(model, seed=0):
    """Give every parameter, scalars included, distinct non-initial values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".scale"):
                p.copy_(0.5 + torch.rand(p.shape, generator=g))
            elif name.endswith("weight_g"):
                p.mul_(0.5 + torch.rand(p.shape, generator=g))
            else:
                p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model
