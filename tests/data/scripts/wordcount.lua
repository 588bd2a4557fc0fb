-- Word count: per-task partial counts in map, totals in reduce.
return {
  map = function(input, ctx)
    local f = frame.new{ {"word", "string"}, {"n", "int64"} }
    for line in input:lines() do
      for w in line:gmatch("%a+") do f:append{ word = w:lower(), n = 1 } end
    end
    return f:group_by("word"):agg{ n = sum("n") }
  end,
  reduce = function(f, ctx)
    return f:group_by("word"):agg{ n = sum("n") }:sort_by({"n", "desc"}, "word")
  end,
}
