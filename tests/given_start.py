"""A fixed attack start in place of the seeded one, to compare an attack with its reference from
the reference's own draw."""


class Given:
    def __init__(self, start):
        self.start = start

    def __call__(self, like, *extra, rows=None):
        return self.start

    def in_ball(self, like):
        return self.start
