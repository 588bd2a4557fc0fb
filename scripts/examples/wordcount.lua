-- Word count: the MapReduce paper's first example.
-- map: one task per text file, counts the words of that file (a per-file partial count,
--      which keeps the intermediate small);
-- reduce: sums the partial counts and sorts by count, then word.
return {
  map = function(input, ctx)
    local f = frame.new{ word = "string", n = "int64" }
    for line in input:lines() do
      for w in line:gmatch("%a+") do
        f:append{ word = w:lower(), n = 1 }
      end
    end
    return f:group_by("word"):agg{ n = sum("n") }
  end,

  reduce = function(f, ctx)
    return f:group_by("word"):agg{ n = sum("n") }:sort_by({"n", "desc"}, "word")
  end,
}
